import { mkdir, chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { CrlWriter } from './crl.js';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { DEFAULT_TOPIC_NAMESPACE, type ProtocolVersion } from '../protocol/version.js';
import { loadOrCreateAdminToken } from './admin-token.js';
import { createApiHandler } from './api.js';
import { DEFAULT_MAX_PACKET_BYTES, startEmbeddedBroker, type EmbeddedBroker } from './broker.js';
import { connectBus, type Bus } from './bus.js';
import { CertificateAuthority } from './ca.js';
import { createLogger, type LogLevel, type LogSink } from './log.js';
import { builtReferenceImages, REFERENCE_LAUNCHER_REPOSITORY, REFERENCE_RUNNER_REPOSITORY } from '../images/reference.js';
import { DEFAULT_MAX_LOG_BYTES, RunFiles } from './run-files.js';
import { BackendService } from './service.js';
import { StateStore } from './store.js';

export interface BackendOptions {
  /** Where state, the CA and the admin token live; created if missing. */
  dataDir: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Host name put into the URLs in pool tokens and the server certificates; default `host`. */
  publicHost?: string;
  /** Extra names for the server certificates (DNS names or IPs). */
  extraHosts?: string[];
  /** API port; 0 (default) picks a free one. */
  port?: number;
  /** Embedded broker port; 0 (default) picks a free one. Ignored with `externalBroker`. */
  brokerPort?: number;
  /** `mqtts://host:port` of an external broker configured per docs/mosquitto.md; no embedded broker then. */
  externalBroker?: string;
  topicNamespace?: string;
  /**
   * Images of runs that name none. Default: the reference runner and launcher
   * images `npm run images` built last (by digest), see src/images/reference.ts.
   */
  defaultRunnerImage?: string;
  defaultLauncherImage?: string;
  /** Per-run log limit in bytes; longer logs are cut with a marker. Default 10 MiB. */
  maxLogBytes?: number;
  /** Log destination (default stderr) and level (default info). */
  logSink?: LogSink;
  logLevel?: LogLevel;
  /** Period of the offline/redelivery check; default 1 s. */
  tickMs?: number;
  /** First re-send delay of an unacknowledged schedule; default 5 s. */
  redeliverMs?: number;
  /** Silence after which a worker counts as offline; default 100 s. */
  offlineAfterMs?: number;
  /** What bad clients cannot exceed; see {@link BackendLimits}. */
  limits?: Partial<BackendLimits>;
  /** Lifetime of worker certificates; default 30 days. The controller renews them at two thirds. */
  workerCertLifetimeMs?: number;
  /** A run whose worker rejects its schedule this many times fails; default 3. */
  maxScheduleRejections?: number;
  /**
   * The newest protocol version to speak (tokens of new pools carry it);
   * default the latest, 2. At 1 the backend acts as one from before version 2:
   * worker CSRs must have RSA keys. See docs/protocol.md, "Versions".
   */
  protocolVersion?: ProtocolVersion;
  /**
   * With an external broker: a file the backend keeps its CRL in (besides
   * `<dataDir>/crl.pem`), e.g. the `crlfile` of the mosquitto configuration.
   */
  crlFile?: string;
  /** Called after each CRL write, to make the broker reload it (mosquitto: SIGHUP). */
  onCrlWritten?: () => void | Promise<void>;
}

/**
 * Bounds that keep a client without credentials from exhausting the backend
 * (docs/backend.md#limits).
 */
export interface BackendLimits {
  /** The whole request head must arrive within this; default 10 s. */
  headersTimeoutMs: number;
  /** The whole request (head and body) must arrive within this; default 30 s. */
  requestTimeoutMs: number;
  /** The TLS handshake must finish within this, on the API and the embedded broker; default 10 s. */
  handshakeTimeoutMs: number;
  /** Open API connections at most; more are closed at once. Default 512. */
  maxConnections: number;
  /** Largest MQTT packet the embedded broker accepts (and the generated mosquitto.conf); default {@link DEFAULT_MAX_PACKET_BYTES}. */
  maxPacketBytes: number;
}

export const DEFAULT_LIMITS: BackendLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 512,
  maxPacketBytes: DEFAULT_MAX_PACKET_BYTES,
};

export interface RunningBackend {
  /** `https://host:port` */
  apiUrl: string;
  /** `mqtts://host:port` (the external broker's, if used). */
  brokerUrl: string;
  /** Bearer token for the admin API (also in `<dataDir>/admin-token`). */
  adminToken: string;
  /** PEM of the backend CA (also in `<dataDir>/ca.pem`). */
  caPem: string;
  /** The images of runs that name none. */
  defaultImages: { runner: string; launcher: string };
  /** Counters: rejected worker messages, schedules and stops sent, workers online. */
  counters(): Record<string, number>;
  /** Stops the API, the broker and the MQTT session; state is already on disk. */
  stop(): Promise<void>;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts the reference backend in this process. */
export async function startBackend(opts: BackendOptions): Promise<RunningBackend> {
  const log = createLogger({ sink: opts.logSink, level: opts.logLevel ?? 'info', component: 'backend' });
  const host = opts.host ?? '127.0.0.1';
  const publicHost = opts.publicHost ?? host;
  const ns = opts.topicNamespace ?? DEFAULT_TOPIC_NAMESPACE;
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  await chmod(opts.dataDir, 0o700);

  const [ca, adminToken, store] = await Promise.all([
    CertificateAuthority.loadOrCreate(opts.dataDir),
    loadOrCreateAdminToken(opts.dataDir),
    StateStore.open(opts.dataDir),
  ]);
  log.addSecret(adminToken);
  const hosts = [...new Set(['localhost', '127.0.0.1', '::1', host, publicHost, ...(opts.extraHosts ?? [])])].filter((h) => h !== '0.0.0.0' && h !== '::');
  // Server keys are made fresh on each start; only the CA must persist.
  const [serverPair, clientPair] = await Promise.all([ca.issueServer(hosts, publicHost), ca.issueBackendClient()]);

  // The API listens first so the pool tokens can carry its real port.
  const sockets = new Set<Socket>();
  const limits: BackendLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const server: Server = createHttpsServer({
    cert: serverPair.certPem,
    key: serverPair.keyPem,
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    // How often the two timeouts above are checked; Node's default (30 s) would let a slow client hold a socket much longer.
    connectionsCheckingInterval: 1_000,
    maxHeaderSize: 16 * 1024,
  });
  server.maxConnections = limits.maxConnections;
  server.on('tlsClientError', (err) => log.debug('API TLS handshake failed', { error: err.message }));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const apiAddr = server.address();
  const apiPort = typeof apiAddr === 'object' && apiAddr ? apiAddr.port : 0;
  const apiUrl = `https://${urlHost(publicHost)}:${apiPort}`;

  let service: BackendService | undefined;
  let broker: EmbeddedBroker | undefined;
  let brokerUrl: string;
  if (opts.externalBroker) {
    brokerUrl = opts.externalBroker;
  } else {
    broker = await startEmbeddedBroker({
      host,
      port: opts.brokerPort ?? 0,
      caPem: ca.certPem,
      certPem: serverPair.certPem,
      keyPem: serverPair.keyPem,
      topicNamespace: ns,
      workerAuth: (id) => service?.workerAuth(id),
      maxPacketBytes: limits.maxPacketBytes,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      log,
    });
    brokerUrl = `mqtts://${urlHost(publicHost)}:${broker.port}`;
  }

  // Every certificate the backend no longer accepts, for brokers that read a CRL (docs/mosquitto.md).
  const crl = new CrlWriter(
    [path.join(opts.dataDir, 'crl.pem'), ...(opts.crlFile ? [opts.crlFile] : [])],
    (number, thisUpdate, nextUpdate) => ca.crl(service?.revokedCertificates() ?? [], number, thisUpdate, nextUpdate),
    () => ++store.data.crlNumber,
    opts.onCrlWritten,
    (err) => log.error('CRL write failed', { error: err.message }),
  );
  await crl.update();
  const crlRefresh = setInterval(() => void crl.update(), 24 * 3600_000);
  /** Takeovers in progress; stop() waits for them, so that nothing of this instance runs after it. */
  const kicks = new Set<Promise<void>>();
  let stopped = false;
  crlRefresh.unref();

  const files = new RunFiles(opts.dataDir, opts.maxLogBytes ?? DEFAULT_MAX_LOG_BYTES, () => store.persist());
  const reference = opts.defaultRunnerImage === undefined || opts.defaultLauncherImage === undefined ? builtReferenceImages() : undefined;
  const defaultImages = {
    runner: opts.defaultRunnerImage ?? reference?.runner ?? REFERENCE_RUNNER_REPOSITORY,
    launcher: opts.defaultLauncherImage ?? reference?.launcher ?? REFERENCE_LAUNCHER_REPOSITORY,
  };
  if (reference === undefined && (opts.defaultRunnerImage === undefined || opts.defaultLauncherImage === undefined)) {
    log.warn('the reference images are not built (npm run images): runs that name no image get a name no node can pull', defaultImages);
  }
  service = new BackendService({
    store,
    files,
    ca,
    log,
    apiUrl,
    brokerUrl,
    topicNamespace: ns === DEFAULT_TOPIC_NAMESPACE ? undefined : ns,
    defaultRunnerImage: defaultImages.runner,
    defaultLauncherImage: defaultImages.launcher,
    redeliverMs: opts.redeliverMs,
    offlineAfterMs: opts.offlineAfterMs,
    workerCertLifetimeMs: opts.workerCertLifetimeMs,
    maxScheduleRejections: opts.maxScheduleRejections,
    protocolVersion: opts.protocolVersion,
    onRevoked: () => void crl.update(),
    onWorkerRemoved: (id) => {
      if (broker) broker.kick(id);
      else if (!stopped) {
        // An external broker checks the CRL at connect time only: a connection made before the
        // revocation is taken over (same client id) and closed, so the worker is out at once.
        const kick = crl.update().then(() => kickByTakeover(id));
        kicks.add(kick);
        void kick.finally(() => kicks.delete(kick));
      }
    },
  });
  const svc = service;
  const counters = (): Record<string, number> => ({ ...svc.counters, onlineWorkers: svc.onlineWorkers() });

  // With the embedded broker the brokerUrl host may be a public name; the backend itself connects on loopback.
  const busUrl = broker ? `mqtts://${urlHost(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host)}:${broker.port}` : brokerUrl;
  let bus: Bus;
  try {
    bus = await connectBus({ brokerUrl: busUrl, caPem: ca.certPem, certPem: clientPair.certPem, keyPem: clientPair.keyPem, topicNamespace: ns, service: svc, log });
  } catch (err) {
    await broker?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  }
  svc.setSender(bus);

  /**
   * Ends an external broker's connection of a deregistered worker: the CA
   * issues a certificate for the worker's id valid for a minute, a clean
   * session connects with it (the broker closes the old connection with that
   * client id and drops its session), disconnects, and that certificate is
   * revoked too.
   */
  async function kickByTakeover(workerId: string): Promise<void> {
    try {
      const kicker = await ca.issueShortLived(workerId, 60_000);
      await new Promise<void>((resolve) => {
        const c = mqtt.connect(busUrl, { clientId: workerId, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ca: ca.certPem, cert: kicker.certPem, key: kicker.keyPem, rejectUnauthorized: true });
        const done = (): void => {
          c.end(true);
          resolve();
        };
        c.once('connect', () => c.end(false, {}, () => resolve()));
        c.once('error', done);
        c.once('close', done);
      });
      service?.revokeExtra(workerId, kicker.serial, kicker.notAfter);
      await store.persist();
      await crl.update();
      log.info('deregistered worker disconnected from the broker', { workerId });
    } catch (err) {
      log.warn('could not disconnect a deregistered worker from the broker', { workerId, error: (err as Error).message });
    }
  }

  const handler = createApiHandler({ service: svc, store, files, adminToken, log, counters });
  server.on('request', (req, res) => void handler(req, res));

  const ticker = setInterval(() => svc.tick(), opts.tickMs ?? 1000);
  ticker.unref();
  svc.scheduleAll();
  // Where the command-line client finds this backend (with ca.pem and admin-token beside it).
  await writeFile(path.join(opts.dataDir, 'api-url'), `${apiUrl}\n`, { mode: 0o644 });
  log.info('backend started', { apiUrl, brokerUrl, external: Boolean(opts.externalBroker), pools: Object.keys(store.data.pools).length, defaultImages, maxLogBytes: files.limit });

  return {
    apiUrl,
    brokerUrl,
    adminToken,
    caPem: ca.certPem,
    defaultImages,
    counters,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(ticker);
      clearInterval(crlRefresh);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await Promise.allSettled([...kicks]);
      await crl.idle();
      // Durable writes still in flight end in deliver(): they must not reach a closed client.
      svc.setSender(undefined);
      // Workers first, then what they sent: the embedded broker holds what it
      // acknowledged in memory only (an external broker persists the session).
      broker?.closeWorkers();
      await bus.drain();
      await bus.close();
      await broker?.close();
      await store.close();
      log.info('backend stopped');
    },
  };
}
