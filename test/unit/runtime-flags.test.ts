import { describe, expect, it } from 'vitest';
import {
  DEFAULT_INSTALL_NAMESPACE,
  DEFAULT_METRICS_CERT_DIR,
  FlagError,
  parseBindAddress,
  parseFlags,
  usage,
} from '../../src/controller/cli/flags.js';

const noPod = (): undefined => undefined;

describe('parseFlags', () => {
  it('has the documented defaults', () => {
    const f = parseFlags([], noPod);
    expect(f).toEqual({
      metricsBindAddress: undefined,
      metricsSecure: true,
      metricsCertDir: '/tmp/k8s-metrics-server/serving-certs',
      healthProbeBindAddress: { host: '', port: 8081 },
      leaderElect: false,
      leaderElectionNamespace: DEFAULT_INSTALL_NAMESPACE,
      namespaces: [],
      logFormat: 'json',
      logLevel: 'info',
      stuckPodGraceMs: 300_000,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      help: false,
    });
  });

  it('takes the leader election timings with controller-runtime\'s names', () => {
    const f = parseFlags(['--leader-elect-lease-duration=6s', '--leader-elect-renew-deadline', '4s', '--leader-elect-retry-period=500ms'], noPod);
    expect([f.leaseDurationMs, f.renewDeadlineMs, f.retryPeriodMs]).toEqual([6000, 4000, 500]);
  });

  it('refuses leader election timings that could make two leaders, naming both flags and values', () => {
    expect(() => parseFlags(['--leader-elect-lease-duration=10s', '--leader-elect-renew-deadline=10s'], noPod)).toThrow(
      '--leader-elect-renew-deadline (10s) must be shorter than --leader-elect-lease-duration (10s): a leader must step down before a standby may take over',
    );
    expect(() => parseFlags(['--leader-elect-renew-deadline=2s', '--leader-elect-retry-period=2s'], noPod)).toThrow(
      '--leader-elect-renew-deadline (2s) must be longer than 1.2 x --leader-elect-retry-period (2s), so that the leader tries to renew more than once',
    );
    expect(() => parseFlags(['--leader-elect-retry-period=0s'], noPod)).toThrow('invalid value "0s" for --leader-elect-retry-period: expected a positive duration');
  });

  it('accepts Go flag syntax: =value, separate value, single dash, bare bools', () => {
    const f = parseFlags(
      [
        '--metrics-bind-address=:8443',
        '--metrics-secure=false',
        '-health-probe-bind-address',
        '127.0.0.1:9000',
        '--leader-elect',
        '--namespaces',
        ' team-a, team-b ,team-a',
        '--log-format=text',
        '--log-level=debug',
        '--stuck-pod-grace=1h30m',
      ],
      noPod,
    );
    expect(f.metricsBindAddress).toEqual({ host: '', port: 8443 });
    expect(f.metricsSecure).toBe(false);
    expect(f.healthProbeBindAddress).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(f.leaderElect).toBe(true);
    expect(f.namespaces).toEqual(['team-a', 'team-b']);
    expect(f.logFormat).toBe('text');
    expect(f.logLevel).toBe('debug');
    expect(f.stuckPodGraceMs).toBe(90 * 60_000);
  });

  it('turns listeners off with 0', () => {
    const f = parseFlags(['--health-probe-bind-address=0', '--metrics-bind-address', '0'], noPod);
    expect(f.healthProbeBindAddress).toBeUndefined();
    expect(f.metricsBindAddress).toBeUndefined();
  });

  it('takes the metrics certificate directory, controller-runtime\'s by default', () => {
    expect(DEFAULT_METRICS_CERT_DIR).toBe('/tmp/k8s-metrics-server/serving-certs');
    expect(parseFlags(['--metrics-cert-dir=/etc/metrics-tls'], noPod).metricsCertDir).toBe('/etc/metrics-tls');
    expect(parseFlags(['--metrics-cert-dir', '/certs'], noPod).metricsCertDir).toBe('/certs');
    // A bare flag is not a bool: it takes the next argument, and refuses to go without one.
    expect(() => parseFlags(['--metrics-cert-dir'], noPod)).toThrow('flag needs a value: --metrics-cert-dir');
  });

  it('takes the Lease namespace from the pod, then from the flag', () => {
    expect(parseFlags([], () => 'ctrl-ns').leaderElectionNamespace).toBe('ctrl-ns');
    expect(parseFlags(['--leader-election-namespace=other'], () => 'ctrl-ns').leaderElectionNamespace).toBe('other');
  });

  it.each([
    [['--metrics-bind-address=abc'], 'invalid value "abc" for --metrics-bind-address: expected [host]:port or 0'],
    [['--metrics-bind-address=:70000'], 'invalid value ":70000" for --metrics-bind-address'],
    [['--metrics-secure=maybe'], 'invalid value "maybe" for --metrics-secure: expected true or false'],
    [['--log-format=xml'], 'invalid value "xml" for --log-format: expected json or text'],
    [['--log-level=loud'], 'invalid value "loud" for --log-level'],
    [['--stuck-pod-grace=5'], 'invalid value "5" for --stuck-pod-grace'],
    [['--stuck-pod-grace=0s'], 'invalid value "0s" for --stuck-pod-grace: expected a positive duration'],
    [['--namespaces=Team_A'], 'invalid value "Team_A" for --namespaces'],
    [['--metrics-cert-dir='], 'invalid value "" for --metrics-cert-dir: expected a directory path'],
    [['--metrics-port=1'], 'unknown flag "--metrics-port"'],
    [['--leader-elect', 'false'], 'unexpected argument "false"'],
    [['--namespaces'], 'flag needs a value: --namespaces'],
    [['stray'], 'unexpected argument "stray"'],
  ])('refuses %j', (argv, message) => {
    expect(() => parseFlags(argv, noPod)).toThrow(FlagError);
    expect(() => parseFlags(argv, noPod)).toThrow(message);
  });

  it('recognises help in its usual spellings', () => {
    for (const h of ['--help', '-help', '-h']) expect(parseFlags([h], noPod).help).toBe(true);
  });
});

describe('parseBindAddress', () => {
  it('reads hosts, IPv6 in brackets, and port 0', () => {
    expect(parseBindAddress('x', '[::1]:8443')).toEqual({ host: '::1', port: 8443 });
    expect(parseBindAddress('x', 'localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(() => parseBindAddress('x', '::1:80')).toThrow(FlagError);
  });
});

describe('usage', () => {
  it('lists every flag', () => {
    const text = usage();
    for (const name of [
      'metrics-bind-address',
      'metrics-secure',
      'metrics-cert-dir',
      'health-probe-bind-address',
      'leader-elect',
      'leader-election-namespace',
      'namespaces',
      'log-format',
      'log-level',
      'stuck-pod-grace',
      'help',
    ]) {
      expect(text).toContain(`--${name}`);
    }
  });
});
