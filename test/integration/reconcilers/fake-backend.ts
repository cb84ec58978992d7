/**
 * A backend for in-process reconciler tests, plugged in where the controller
 * meets the protocol (`BackendConnector`): it keeps workers, their sessions,
 * every state and run status the controller sends, and can refuse, fail or be
 * unreachable on demand. Everything on the Kubernetes side stays real.
 */
import { EventEmitter } from 'node:events';
import { createPrivateKey, createPublicKey, randomBytes, type webcrypto } from 'node:crypto';
import { signingAlgorithmFor, verifyCsrPem, webCryptoKeyPair } from '../../../src/protocol/csr-verify.js';
import { generateEcdsaKeyPair, workerKeyTypesUpTo } from '../../../src/protocol/keys.js';
import { x509 } from '../../../src/protocol/x509.js';
import type { BackendApi, BackendConnector, WorkerSession } from '../../../src/controller/backend/connector.js';
import {
  MESSAGE_VERSION,
  RetryableBackendError,
  TerminalBackendError,
  type BackendClientOptions,
  type DrainResponse,
  type PoolStats,
  type RegisterResponse,
  type RunLogState,
  type RunStatusMessage,
  type ScheduleMessage,
  type ToWorkerMessage,
  type WorkerConnectionEvents,
  type WorkerConnectionOptions,
  type WorkerState,
} from '../../../src/protocol/index.js';

export interface FakeWorker {
  readonly poolId: string;
  readonly id: string;
  /** Registrations of this id (a repeated registration reuses the id). */
  registrations: number;
  drained: boolean;
  deregistered: boolean;
}

export interface ReceivedStatus extends Omit<RunStatusMessage, 'type' | 'version'> {
  readonly workerId: string;
}

class FakeSession extends EventEmitter<WorkerConnectionEvents> implements WorkerSession {
  connected = false;
  readonly rejectedCount = 0;
  closed = false;

  constructor(
    private readonly backend: FakeBackend,
    readonly options: WorkerConnectionOptions,
  ) {
    super();
  }

  get workerId(): string {
    return this.options.credentials.workerId;
  }

  start(): void {
    this.backend.sessionStarted(this);
    if (this.backend.offline.has(this.workerId)) return;
    setImmediate(() => this.up());
  }

  up(): void {
    if (this.closed || this.connected) return;
    this.connected = true;
    this.emit('connect', { sessionPresent: true });
    this.flush();
  }

  down(): void {
    if (!this.connected) return;
    this.connected = false;
    this.emit('disconnect', {});
  }

  async setState(state: WorkerState, runId?: string): Promise<void> {
    this.backend.states.push({ workerId: this.workerId, state, runId });
  }

  /** Publishes waiting for the session (or for the broker to acknowledge again), in the order they were made. */
  private readonly outgoing: { readonly update: Omit<RunStatusMessage, 'type' | 'version'>; resolve(): void; reject(err: Error): void }[] = [];
  private retry: NodeJS.Timeout | undefined;

  /**
   * Like a QoS 1 publish: sent in the order of the calls, at once when the
   * session is up (without waiting for earlier acknowledgements), queued while
   * it is down or while the broker withholds acknowledgements.
   */
  sendRunStatus(update: Omit<RunStatusMessage, 'type' | 'version'>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.outgoing.push({ update, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed) {
      for (const p of this.outgoing.splice(0)) p.reject(new Error('session closed'));
      return;
    }
    if (!this.connected || this.backend.acksWithheld) {
      this.retry ??= setTimeout(() => {
        this.retry = undefined;
        this.flush();
      }, 20);
      return;
    }
    for (const p of this.outgoing.splice(0)) {
      const received = { workerId: this.workerId, ...p.update };
      this.backend.statuses.push(received);
      // The backend reacts before the controller sees the broker's acknowledgement.
      Promise.resolve(this.backend.onStatus?.(received)).then(p.resolve, p.reject);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    this.flush();
  }

  /** Delivers a message the way the broker does: resolves once the controller handled it. */
  deliver(message: ToWorkerMessage): Promise<void> {
    return Promise.resolve(this.options.onMessage(message));
  }
}

export class FakeBackend implements BackendConnector {
  readonly workers = new Map<string, FakeWorker>();
  readonly statuses: ReceivedStatus[] = [];
  readonly states: { workerId: string; state: WorkerState; runId?: string }[] = [];
  /** Every session the controller opened, newest last. */
  readonly sessions: FakeSession[] = [];
  /** Workers whose sessions do not come up until {@link FakeBackend.connect}. */
  readonly offline = new Set<string>();
  /** Pools refused with this message (401, as a backend answers a key it does not know). */
  readonly refused = new Map<string, string>();
  unreachable = false;
  /** The broker acknowledges no run status (the controller's publish waits) while set. */
  acksWithheld = false;
  /** Runs when a run status arrives, before the controller gets its acknowledgement. */
  onStatus: ((status: ReceivedStatus) => Promise<void>) | undefined;
  /** Workers whose deregistration fails (500) until removed from this set. */
  readonly deregistrationFails = new Set<string>();
  /** Workers the backend calls busy when drained (a run the controller has not shown yet). */
  readonly busy = new Set<string>();
  /** Runs waiting for a worker, by pool id (the autoscaler's demand, with the busy workers). */
  readonly pending = new Map<string, number>();
  /** Whether pool stats wait for a change (off: a backend without long polls). */
  longPolls = true;
  /** Calls of watchPoolStats so far. */
  watchCalls = 0;
  /**
   * Set: registrations get real X.509 certificates (from a throw-away CA) valid this long,
   * so that the controller has something to renew. Unset: placeholder text.
   */
  certLifetimeMs: number | undefined;
  /** Registrations fail (500) with this message while set. */
  registrationFails: string | undefined;
  /** Serials of the certificates issued, per worker, oldest first. */
  readonly issued = new Map<string, string[]>();
  /** Run scripts the worker API serves, by run id. */
  readonly scripts = new Map<string, Buffer>();
  /** Run logs as relayed, by run id (appends at offsets, as the reference backend stores them). */
  readonly logs = new Map<string, { bytes: Buffer; complete: boolean }>();
  /** Per-run log limit. */
  logLimit = 10 * 1024 * 1024;
  private registrations = 0;

  client(options: BackendClientOptions): BackendApi {
    const poolId = options.token.poolId;
    const guard = (what: string): void => {
      if (this.unreachable) throw new RetryableBackendError(`${what}: cannot reach the backend at ${options.token.apiUrl}: connect ECONNREFUSED`, undefined);
      const refusal = this.refused.get(poolId);
      if (refusal !== undefined) throw new TerminalBackendError(`${what}: backend answered 401: ${refusal}`, 401);
    };
    return {
      register: async (csr: string, workerId?: string): Promise<RegisterResponse> => {
        guard('register worker');
        if (!csr.includes('CERTIFICATE REQUEST')) throw new TerminalBackendError('register worker: backend answered 400: not a CSR', 400);
        if (this.registrationFails !== undefined) throw new RetryableBackendError(`register worker: backend answered 500: ${this.registrationFails}`, 500);
        const id = workerId ?? `w${++this.registrations}`;
        const worker = this.workers.get(id) ?? { poolId, id, registrations: 0, drained: false, deregistered: false };
        worker.registrations++;
        worker.deregistered = false;
        this.workers.set(id, worker);
        if (this.certLifetimeMs === undefined) return { workerId: id, certificatePem: `fake certificate of ${id}`, caPem: 'fake broker CA' };
        const { certificatePem, serial, caPem } = await issueCertificate(csr, id, this.certLifetimeMs);
        this.issued.set(id, [...(this.issued.get(id) ?? []), serial]);
        return { workerId: id, certificatePem, caPem };
      },
      deregister: async (workerId: string): Promise<void> => {
        guard('deregister worker');
        if (this.deregistrationFails.has(workerId)) throw new RetryableBackendError('deregister worker: backend answered 500: database is locked', 500);
        const worker = this.workers.get(workerId);
        if (worker !== undefined) worker.deregistered = true;
      },
      drain: async (workerId: string): Promise<DrainResponse> => {
        guard('drain worker');
        const worker = this.workers.get(workerId);
        if (worker !== undefined) worker.drained = true;
        return { busy: this.busy.has(workerId) };
      },
      undrain: async (workerId: string): Promise<void> => {
        guard('undrain worker');
        const worker = this.workers.get(workerId);
        if (worker !== undefined) worker.drained = false;
      },
      poolStats: async (): Promise<PoolStats> => {
        guard('get pool stats');
        return this.statsOf(poolId);
      },
      watchPoolStats: async (revision: string | undefined, waitSeconds: number, options: { signal?: AbortSignal } = {}): Promise<PoolStats> => {
        guard('watch pool stats');
        this.watchCalls++;
        if (!this.longPolls) return { ...this.statsOf(poolId), revision: undefined };
        const deadline = Date.now() + waitSeconds * 1000;
        while (revision !== undefined && this.revisionOf(poolId) === revision && Date.now() < deadline) {
          options.signal?.throwIfAborted();
          await new Promise((r) => setTimeout(r, 20));
        }
        guard('watch pool stats');
        return this.statsOf(poolId);
      },
      runScript: async (runId: string): Promise<Buffer> => {
        guard('get run script');
        const script = this.scripts.get(runId);
        if (script === undefined) throw new TerminalBackendError(`get run script: backend answered 404: run ${runId} has no script`, 404, { code: 'not-found' });
        return script;
      },
      logState: async (runId: string): Promise<RunLogState> => {
        guard('get run log state');
        return this.logStateOf(runId);
      },
      appendLog: async (runId: string, offset: number, bytes: Buffer): Promise<RunLogState> => {
        guard('append run log');
        const log = this.logs.get(runId) ?? { bytes: Buffer.alloc(0), complete: false };
        this.logs.set(runId, log);
        const conflict = (why: string): never => {
          throw new TerminalBackendError(`append run log: backend answered 409: ${why}`, 409, { code: 'conflict' });
        };
        if (offset > log.bytes.length) conflict('gap');
        const overlap = Math.min(log.bytes.length - offset, bytes.length);
        if (!log.bytes.subarray(offset, offset + overlap).equals(bytes.subarray(0, overlap))) conflict('bytes differ');
        const rest = bytes.subarray(overlap);
        if (rest.length > 0 && log.complete) conflict('complete');
        const room = this.logLimit - log.bytes.length;
        log.bytes = Buffer.concat([log.bytes, rest.subarray(0, room)]);
        if (rest.length > room) log.complete = true;
        return this.logStateOf(runId);
      },
      completeLog: async (runId: string, length: number): Promise<RunLogState> => {
        guard('complete run log');
        const log = this.logs.get(runId) ?? { bytes: Buffer.alloc(0), complete: false };
        this.logs.set(runId, log);
        if (!log.complete && length !== log.bytes.length) throw new TerminalBackendError(`complete run log: backend answered 409: holds ${log.bytes.length}`, 409, { code: 'conflict' });
        log.complete = true;
        return this.logStateOf(runId);
      },
      close: () => undefined,
    };
  }

  logStateOf(runId: string): RunLogState {
    const log = this.logs.get(runId);
    const length = log?.bytes.length ?? 0;
    return { length, complete: log?.complete ?? false, truncated: length >= this.logLimit && log?.complete === true, limit: this.logLimit };
  }

  /** Workers of the pool whose last announced state is busy. */
  busyWorkersOf(poolId: string): number {
    const last = new Map<string, string>();
    for (const s of this.states) last.set(s.workerId, s.state);
    return [...this.workers.values()].filter((w) => w.poolId === poolId && !w.deregistered && last.get(w.id) === 'busy').length;
  }

  statsOf(poolId: string): PoolStats {
    const mine = [...this.workers.values()].filter((w) => w.poolId === poolId && !w.deregistered);
    const busy = this.busyWorkersOf(poolId);
    return {
      poolId,
      revision: this.revisionOf(poolId),
      pendingRuns: this.pending.get(poolId) ?? 0,
      workers: { total: mine.length, idle: mine.length - busy, busy, drained: mine.filter((w) => w.drained).length, offline: 0 },
    };
  }

  private revisionOf(poolId: string): string {
    return `${this.pending.get(poolId) ?? 0}/${this.busyWorkersOf(poolId)}`;
  }

  session(options: WorkerConnectionOptions): WorkerSession {
    return new FakeSession(this, options);
  }

  sessionStarted(session: FakeSession): void {
    this.sessions.push(session);
  }

  /** The worker's open session, if the controller holds one. */
  sessionOf(workerId: string): FakeSession | undefined {
    return this.sessions.filter((s) => s.workerId === workerId && !s.closed).at(-1);
  }

  /** Lets the worker's session come up (again). */
  connect(workerId: string): void {
    this.offline.delete(workerId);
    this.sessionOf(workerId)?.up();
  }

  /** Drops the worker's session; it stays down until {@link FakeBackend.connect}. */
  disconnect(workerId: string): void {
    this.offline.add(workerId);
    this.sessionOf(workerId)?.down();
  }

  /**
   * Sends `schedule` for a run to the worker; resolves once the controller
   * acknowledged it. `late`: through the worker's last session even if the
   * controller has just closed it (a message already on its way).
   */
  async schedule(workerId: string, runId: string, over: Partial<ScheduleMessage> = {}, late = false): Promise<void> {
    const session = late ? this.sessions.filter((s) => s.workerId === workerId).at(-1) : this.sessionOf(workerId);
    if (session === undefined) throw new Error(`worker ${workerId} has no session`);
    await session.deliver({
      type: 'schedule',
      version: MESSAGE_VERSION,
      runId,
      runnerImage: 'registry.example.com/runner:1',
      launcherImage: 'registry.example.com/launcher:1',
      env: {},
      timeouts: {},
      ...over,
    });
  }

  async stop(workerId: string, runId: string): Promise<void> {
    const session = this.sessionOf(workerId);
    if (session === undefined) throw new Error(`worker ${workerId} has no session`);
    await session.deliver({ type: 'stop', version: MESSAGE_VERSION, runId });
  }

  /** The run statuses the controller sent for a run, in order. */
  statusesOf(runId: string): string[] {
    return this.statuses.filter((s) => s.runId === runId).map((s) => s.status);
  }
}

let ca: Promise<{ keys: webcrypto.CryptoKeyPair; cert: x509.X509Certificate; pem: string }> | undefined;

/** A throw-away CA (ECDSA P-256: made in a millisecond), once per process. */
function fakeCa(): NonNullable<typeof ca> {
  ca ??= (async () => {
    const { keys } = await webCryptoKeyPair(createPrivateKey((await generateEcdsaKeyPair()).privateKeyPem));
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: [{ CN: ['fake broker CA'] }],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      keys,
      signingAlgorithm: signingAlgorithmFor('ecdsa-p256'),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    return { keys, cert, pem: cert.toString('pem') };
  })();
  return ca;
}

/**
 * A real client certificate for the CSR's key (RSA or ECDSA P-256, the CSR
 * checked as the backend does), from a throw-away CA, valid `lifetimeMs` from now.
 */
async function issueCertificate(csrPem: string, workerId: string, lifetimeMs: number): Promise<{ certificatePem: string; serial: string; caPem: string }> {
  const { keys, cert: caCert, pem } = await fakeCa();
  const csr = await verifyCsrPem(csrPem, workerKeyTypesUpTo(2));
  // A leading 1: no leading zero for the tests to normalize away.
  const serial = `1${randomBytes(8).toString('hex').slice(1)}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: [{ CN: [workerId] }],
    issuer: caCert.subjectName,
    notBefore: new Date(),
    notAfter: new Date(Date.now() + lifetimeMs),
    publicKey: createPublicKey(csr.publicKeyPem).export({ type: 'spki', format: 'der' }),
    signingKey: keys.privateKey,
    signingAlgorithm: signingAlgorithmFor('ecdsa-p256'),
  });
  return { certificatePem: cert.toString('pem'), serial, caPem: pem };
}
