/**
 * Command-line flags of the controller, named as the product documentation names them.
 *
 * Syntax follows Go's `flag` package because that is what the documented commands
 * (and people used to controller-runtime binaries) write: `--name=value`,
 * `--name value`, single or double dash, and bare `--bool` meaning true.
 * A bool never consumes the next argument, so `--leader-elect false` is refused
 * instead of silently meaning "true, plus a stray argument".
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../../runtime/duration.js';
import { type LogFormat, type LogLevel, LOG_LEVELS } from '../../runtime/log.js';

/** A listen address; `host` is empty for "all interfaces". Port 0 asks the OS for a free port. */
export interface BindAddress {
  readonly host: string;
  readonly port: number;
}

/** The parsed flags. `undefined` listeners are turned off (the value `0`). */
export interface ControllerFlags {
  readonly metricsBindAddress: BindAddress | undefined;
  readonly metricsSecure: boolean;
  /**
   * Directory with `tls.crt` and `tls.key` for the HTTPS metrics endpoint;
   * when the files are not there, a self-signed certificate is made at start.
   */
  readonly metricsCertDir: string;
  readonly healthProbeBindAddress: BindAddress | undefined;
  readonly leaderElect: boolean;
  readonly leaderElectionNamespace: string;
  /** Namespaces to watch; empty means all namespaces. */
  readonly namespaces: readonly string[];
  readonly logFormat: LogFormat;
  readonly logLevel: LogLevel;
  /** How long a run pod may stay Pending/ImagePullBackOff before its run is failed, in ms. */
  readonly stuckPodGraceMs: number;
  /** How long a standby waits after the last renewal it saw before taking the Lease, in ms. */
  readonly leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it steps down, in ms. */
  readonly renewDeadlineMs: number;
  /** Interval between attempts to take or renew the Lease, in ms. */
  readonly retryPeriodMs: number;
  readonly help: boolean;
}

/** A refused command line; the message names the flag and the offending value. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

/** Where the in-cluster ServiceAccount mount says which namespace the pod runs in. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
/** Where controller-runtime looks for the metrics serving certificate; mount a TLS Secret here. */
export const DEFAULT_METRICS_CERT_DIR = '/tmp/k8s-metrics-server/serving-certs';
/** The namespace the documented install uses, for runs outside a cluster. */
export const DEFAULT_INSTALL_NAMESPACE = 'spacelift-worker-controller-system';

type Values = { -readonly [K in keyof ControllerFlags]: ControllerFlags[K] };

interface FlagSpec {
  readonly name: string;
  readonly bool: boolean;
  readonly usage: string;
  readonly defaultText: string;
  apply(values: Values, raw: string): void;
}

function invalid(flag: string, raw: string, expected: string): FlagError {
  return new FlagError(`invalid value ${JSON.stringify(raw)} for --${flag}: expected ${expected}`);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Parses `[host]:port` or `0` (off). Exported for the servers that take these addresses. */
export function parseBindAddress(flag: string, raw: string): BindAddress | undefined {
  if (raw === '0') return undefined;
  const expected = '[host]:port or 0';
  const colon = raw.lastIndexOf(':');
  if (colon < 0) throw invalid(flag, raw, expected);
  let host = raw.slice(0, colon);
  const portText = raw.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw invalid(flag, raw, `${expected} (bracket IPv6 hosts)`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw invalid(flag, raw, expected);
  return { host, port: Number(portText) };
}

/** A positive Go duration, in ms. */
function parsePositiveDuration(flag: string, raw: string): number {
  let ms: number;
  try {
    ms = parseDuration(raw);
  } catch {
    throw invalid(flag, raw, 'a Go duration such as 5m or 90s');
  }
  if (ms <= 0) throw invalid(flag, raw, 'a positive duration');
  return ms;
}

function parseBool(flag: string, raw: string): boolean {
  // The spellings Go's strconv.ParseBool accepts.
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(raw)) return false;
  throw invalid(flag, raw, 'true or false');
}

const SPECS: readonly FlagSpec[] = [
  {
    name: 'metrics-bind-address',
    bool: false,
    usage: 'Address the metrics endpoint binds to, e.g. ":8443"; "0" turns metrics off.',
    defaultText: '0',
    apply: (v, raw) => (v.metricsBindAddress = parseBindAddress('metrics-bind-address', raw)),
  },
  {
    name: 'metrics-secure',
    bool: true,
    usage: 'Serve metrics over HTTPS, authenticated and authorized through the Kubernetes API.',
    defaultText: 'true',
    apply: (v, raw) => (v.metricsSecure = parseBool('metrics-secure', raw)),
  },
  {
    name: 'metrics-cert-dir',
    bool: false,
    usage: 'Directory holding tls.crt and tls.key for the HTTPS metrics endpoint (reloaded when they change); without them a self-signed certificate is made at start.',
    defaultText: DEFAULT_METRICS_CERT_DIR,
    apply: (v, raw) => {
      if (raw.trim() === '') throw invalid('metrics-cert-dir', raw, 'a directory path');
      v.metricsCertDir = raw;
    },
  },
  {
    name: 'health-probe-bind-address',
    bool: false,
    usage: 'Address the /healthz and /readyz endpoints bind to; "0" turns them off.',
    defaultText: ':8081',
    apply: (v, raw) => (v.healthProbeBindAddress = parseBindAddress('health-probe-bind-address', raw)),
  },
  {
    name: 'leader-elect',
    bool: true,
    usage: 'Elect a leader on a Lease so that only one replica reconciles and holds worker sessions.',
    defaultText: 'false',
    apply: (v, raw) => (v.leaderElect = parseBool('leader-elect', raw)),
  },
  {
    name: 'leader-election-namespace',
    bool: false,
    usage: `Namespace of the leader election Lease (default: the pod's namespace, else ${DEFAULT_INSTALL_NAMESPACE}).`,
    defaultText: '',
    apply: (v, raw) => {
      if (!DNS_LABEL.test(raw)) throw invalid('leader-election-namespace', raw, 'a namespace name');
      v.leaderElectionNamespace = raw;
    },
  },
  {
    name: 'namespaces',
    bool: false,
    usage: 'Comma-separated namespaces to watch; empty watches all namespaces.',
    defaultText: '',
    apply: (v, raw) => {
      const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
      for (const n of names) {
        if (!DNS_LABEL.test(n)) throw invalid('namespaces', raw, `comma-separated namespace names ("${n}" is not one)`);
      }
      v.namespaces = [...new Set(names)];
    },
  },
  {
    name: 'log-format',
    bool: false,
    usage: 'Log format: json (one object per line) or text (for terminals).',
    defaultText: 'json',
    apply: (v, raw) => {
      if (raw !== 'json' && raw !== 'text') throw invalid('log-format', raw, 'json or text');
      v.logFormat = raw;
    },
  },
  {
    name: 'log-level',
    bool: false,
    usage: `Minimum log level: ${LOG_LEVELS.join(', ')}.`,
    defaultText: 'info',
    apply: (v, raw) => {
      const level = LOG_LEVELS.find((l) => l === raw);
      if (level === undefined) throw invalid('log-level', raw, LOG_LEVELS.join(', '));
      v.logLevel = level;
    },
  },
  {
    name: 'stuck-pod-grace',
    bool: false,
    usage: 'How long a run pod may stay unschedulable or unable to pull its image before the run is failed (Go duration).',
    defaultText: '5m',
    apply: (v, raw) => (v.stuckPodGraceMs = parsePositiveDuration('stuck-pod-grace', raw)),
  },
  {
    name: 'leader-elect-lease-duration',
    bool: false,
    usage: 'How long a standby waits after the leader\'s last renewal before it takes over: the longest failover after a leader dies (Go duration).',
    defaultText: '15s',
    apply: (v, raw) => (v.leaseDurationMs = parsePositiveDuration('leader-elect-lease-duration', raw)),
  },
  {
    name: 'leader-elect-renew-deadline',
    bool: false,
    usage: 'How long the leader keeps trying to renew its Lease before it steps down (and exits); shorter than the lease duration (Go duration).',
    defaultText: '10s',
    apply: (v, raw) => (v.renewDeadlineMs = parsePositiveDuration('leader-elect-renew-deadline', raw)),
  },
  {
    name: 'leader-elect-retry-period',
    bool: false,
    usage: 'Interval between attempts to take or renew the Lease (Go duration).',
    defaultText: '2s',
    apply: (v, raw) => (v.retryPeriodMs = parsePositiveDuration('leader-elect-retry-period', raw)),
  },
  {
    name: 'help',
    bool: true,
    usage: 'Print this help and exit.',
    defaultText: 'false',
    apply: (v, raw) => (v.help = parseBool('help', raw)),
  },
];

/**
 * client-go's rules: the leader must give up before anyone may take over
 * (renew deadline < lease duration), and have time for more than one attempt
 * (renew deadline > 1.2 x retry period, the retries' jitter).
 */
function checkLeaderElectionTimings(v: Values): void {
  const text = (ms: number): string => `${ms / 1000}s`;
  if (v.renewDeadlineMs >= v.leaseDurationMs) {
    throw new FlagError(
      `--leader-elect-renew-deadline (${text(v.renewDeadlineMs)}) must be shorter than --leader-elect-lease-duration (${text(v.leaseDurationMs)}): a leader must step down before a standby may take over`,
    );
  }
  if (v.renewDeadlineMs <= 1.2 * v.retryPeriodMs) {
    throw new FlagError(
      `--leader-elect-renew-deadline (${text(v.renewDeadlineMs)}) must be longer than 1.2 x --leader-elect-retry-period (${text(v.retryPeriodMs)}), so that the leader tries to renew more than once`,
    );
  }
}

/** Reads the pod's namespace from the ServiceAccount mount; undefined outside a cluster. */
export function podNamespace(file: string = SERVICE_ACCOUNT_NAMESPACE_FILE): string | undefined {
  try {
    const ns = readFileSync(file, 'utf8').trim();
    return ns === '' ? undefined : ns;
  } catch {
    return undefined;
  }
}

/**
 * Parses the controller's arguments (without `node` and the script).
 * @param podNamespaceOf lookup of the running pod's namespace; injectable for tests.
 * @throws FlagError for unknown flags, missing values, bad values and stray arguments.
 */
export function parseFlags(
  argv: readonly string[],
  podNamespaceOf: () => string | undefined = podNamespace,
): ControllerFlags {
  const values: Values = {
    metricsBindAddress: undefined,
    metricsSecure: true,
    metricsCertDir: DEFAULT_METRICS_CERT_DIR,
    healthProbeBindAddress: { host: '', port: 8081 },
    leaderElect: false,
    leaderElectionNamespace: '',
    namespaces: [],
    logFormat: 'json',
    logLevel: 'info',
    stuckPodGraceMs: 5 * 60_000,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      if (i + 1 < argv.length) throw new FlagError(`unexpected argument ${JSON.stringify(argv[i + 1])}`);
      break;
    }
    const m = /^--?([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!m || arg === '-') throw new FlagError(`unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1] === 'h' ? 'help' : (m[1] ?? '');
    const spec = SPECS.find((s) => s.name === name);
    if (!spec) throw new FlagError(`unknown flag ${JSON.stringify(arg.split('=')[0])} (see --help)`);
    let raw = m[2];
    if (raw === undefined) {
      if (spec.bool) raw = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new FlagError(`flag needs a value: --${spec.name}`);
        raw = next;
        i++;
      }
    }
    spec.apply(values, raw);
  }
  if (values.leaderElectionNamespace === '') {
    values.leaderElectionNamespace = podNamespaceOf() ?? DEFAULT_INSTALL_NAMESPACE;
  }
  checkLeaderElectionTimings(values);
  return values;
}

/** The `--help` text, generated from the same table the parser uses so they cannot drift. */
export function usage(program = 'kube-workerpool-controller'): string {
  const lines = [`Usage: ${program} [flags]`, '', 'Flags:'];
  for (const s of SPECS) {
    const def = s.defaultText === '' ? '' : ` (default ${JSON.stringify(s.defaultText)})`;
    lines.push(`  --${s.name}${s.bool ? '' : ' value'}`, `      ${s.usage}${def}`);
  }
  return `${lines.join('\n')}\n`;
}
