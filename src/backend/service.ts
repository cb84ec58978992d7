import { createHash, X509Certificate } from 'node:crypto';
import { CsrKeyTypeError, verifyCsrPem, type VerifiedCsr } from '../protocol/csr-verify.js';
import { generateRsaKeyPair, workerKeyTypesUpTo } from '../protocol/keys.js';
import { ACCEPTED_WORKER_ID, type RegisterResponse, type PoolStats, type ErrorCode, type RunLogState } from '../protocol/registration.js';
import {
  checkMessage,
  encodeMessage,
  MAX_MESSAGE_BYTES,
  MAX_SCRIPT_BYTES,
  type RejectMessage,
  type RunStatusMessage,
  type ScheduleMessage,
  type ScriptRef,
  type StateMessage,
  type StopMessage,
  type WorkerState,
} from '../protocol/messages.js';
import { LogConflict, type LogMeta, type RunFiles } from './run-files.js';
import { normalizeSerial, type WorkerAuth } from './broker.js';
import type { RevokedCertificate } from './crl.js';
import { encodePoolToken } from '../protocol/token.js';
import { LATEST_PROTOCOL_VERSION, MESSAGE_VERSION, type ProtocolVersion } from '../protocol/version.js';
import type { CertificateAuthority } from './ca.js';
import { ulid } from '../protocol/ids.js';
import type { Logger } from './log.js';
import { ACTIVE_RUN_STATES, TERMINAL_RUN_STATES, type RunRecord, type RunState, type StateStore, type WorkerRecord } from './store.js';

/** An error with an HTTP status and a message meant for the caller. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Sends messages to workers (the backend's MQTT client). */
export interface WorkerSender {
  send(poolId: string, workerId: string, message: ScheduleMessage | StopMessage): void;
}

/** What the backend knows about a worker's connection; memory only, rebuilt from messages after a restart. */
interface Presence {
  online: boolean;
  reported: WorkerState;
  lastSeen: number;
  /** When it last became available; the scheduler prefers the smallest. */
  idleSince: number;
}

/** Re-send bookkeeping for a run's pending schedule or stop; memory only. */
interface Delivery {
  lastSent: number;
  attempts: number;
}

export interface ServiceOptions {
  store: StateStore;
  /** Scripts and logs on disk. */
  files: RunFiles;
  ca: CertificateAuthority;
  log: Logger;
  apiUrl: string;
  brokerUrl: string;
  topicNamespace?: string;
  defaultRunnerImage: string;
  defaultLauncherImage: string;
  /** A worker silent for this long counts as offline; default 100 s (three 30 s heartbeats and some slack). */
  offlineAfterMs?: number;
  /** First re-send of an unacknowledged schedule/stop; doubles up to 5 min. Default 5 s. */
  redeliverMs?: number;
  /** Called after a worker is deregistered (the broker disconnects it). */
  onWorkerRemoved?: (workerId: string) => void;
  /** Called after a certificate was revoked and the change is on disk (the CRL is rewritten). */
  onRevoked?: () => void;
  /** Lifetime of worker certificates; default 30 days. */
  workerCertLifetimeMs?: number;
  /** A run whose worker rejects its schedule this many times fails; default 3. */
  maxScheduleRejections?: number;
  /**
   * The newest protocol version this backend speaks, put in the tokens of new
   * pools; default {@link LATEST_PROTOCOL_VERSION}. At 1, worker CSRs must have
   * RSA keys (as for a backend from before version 2); at 2, ECDSA P-256 keys
   * are accepted too. Either way every worker already registered keeps working.
   */
  protocolVersion?: ProtocolVersion;
}

/** What the API shows of a run. */
export type RunView = Pick<RunRecord, 'id' | 'poolId' | 'state' | 'workerId' | 'reason' | 'exitCode' | 'createdAt' | 'updatedAt'> & {
  /** The run's script, or null for a run without one. */
  script: ScriptRef | null;
  /** How much of the run's log the backend holds. */
  log: { bytes: number; complete: boolean; truncated: boolean };
};

/**
 * Checks a run's script as submitted: shell text, at most
 * {@link MAX_SCRIPT_BYTES} bytes of UTF-8, no NUL byte (a shell cannot read
 * one). Returns its bytes.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function checkScript(script: unknown): Buffer {
  if (typeof script !== 'string') throw new ApiError(400, 'bad-request', `field "script" must be a string of shell text, got ${script === null ? 'null' : Array.isArray(script) ? 'array' : typeof script}`);
  if (script.trim() === '') throw new ApiError(400, 'bad-request', 'field "script" must not be empty (leave it out for a run without a script)');
  if (LONE_SURROGATE.test(script)) throw new ApiError(400, 'bad-request', 'field "script" is not valid Unicode text (it has a lone surrogate)');
  if (script.includes('\u0000')) throw new ApiError(400, 'bad-request', `field "script" contains a NUL character at position ${script.indexOf('\u0000')}; a shell script cannot`);
  const bytes = Buffer.from(script, 'utf8');
  if (bytes.length > MAX_SCRIPT_BYTES) throw new ApiError(400, 'bad-request', `field "script" is ${bytes.length} bytes, more than ${MAX_SCRIPT_BYTES} (256 KiB)`);
  return bytes;
}

/** Counters for tests, the status endpoint and logs. */
export interface ServiceCounters {
  rejectedMessages: number;
  schedulesSent: number;
  stopsSent: number;
}

/**
 * The backend's domain logic: pools, workers, runs, scheduling and the
 * handling of worker messages. Transport-free; the HTTP API and the MQTT
 * client call into it.
 */
export class BackendService {
  private readonly presence = new Map<string, Presence>();
  private readonly deliveries = new Map<string, Delivery>();
  /** Long polls of each pool's stats waiting for a change (see waitForPoolStats). */
  private readonly demandWaiters = new Map<string, Set<() => void>>();
  private sender: WorkerSender | undefined;
  private readonly offlineAfterMs: number;
  private readonly redeliverMs: number;
  readonly protocolVersion: ProtocolVersion;
  readonly counters: ServiceCounters = { rejectedMessages: 0, schedulesSent: 0, stopsSent: 0 };

  constructor(private readonly opts: ServiceOptions) {
    this.offlineAfterMs = opts.offlineAfterMs ?? 100_000;
    this.redeliverMs = opts.redeliverMs ?? 5_000;
    this.protocolVersion = opts.protocolVersion ?? LATEST_PROTOCOL_VERSION;
  }

  private get data() {
    return this.opts.store.data;
  }

  /** `undefined` detaches it: a stopping backend sends nothing more (runs stay scheduled; the next start sends them). */
  setSender(sender: WorkerSender | undefined): void {
    this.sender = sender;
  }

  // ---- pools -------------------------------------------------------------

  /** Creates a pool; returns the credentials exactly as they go into the pool's Secret. */
  async createPool(name: string): Promise<{ id: string; token: string; privateKey: string }> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const id = ulid();
    this.data.pools[id] = { id, name, publicKeyPem, createdAt: new Date().toISOString() };
    await this.opts.store.persist();
    const token = this.poolToken(id);
    this.opts.log.info('pool created', { poolId: id });
    return { id, token, privateKey: Buffer.from(privateKeyPem, 'utf8').toString('base64') };
  }

  /** The `token` of a pool's Secret, at the protocol version this backend speaks now. */
  poolToken(poolId: string): string {
    this.pool(poolId);
    return encodePoolToken({
      protocolVersion: this.protocolVersion,
      apiUrl: this.opts.apiUrl,
      brokerUrl: this.opts.brokerUrl,
      poolId,
      caCert: this.opts.ca.certPem,
      ...(this.opts.topicNamespace ? { topicNamespace: this.opts.topicNamespace } : {}),
    });
  }

  poolPublicKey(poolId: string): string | undefined {
    return this.data.pools[poolId]?.publicKeyPem;
  }

  private pool(poolId: string) {
    const pool = this.data.pools[poolId];
    if (!pool) throw new ApiError(404, 'unknown-pool', `pool ${JSON.stringify(poolId)} does not exist`);
    return pool;
  }

  listPools(): Array<{ id: string; name: string }> {
    return Object.values(this.data.pools).map((p) => ({ id: p.id, name: p.name }));
  }

  getPool(poolId: string): { id: string; name: string; pendingRuns: number; workers: Array<{ id: string; state: string; drained: boolean }> } {
    const pool = this.pool(poolId);
    return {
      id: pool.id,
      name: pool.name,
      pendingRuns: this.queuedRuns(poolId).length,
      workers: ((active) => this.poolWorkers(poolId).map((w) => ({ id: w.id, state: this.workerState(w, active), drained: w.drained })))(this.activeRunsByWorker()),
    };
  }

  poolStats(poolId: string): PoolStats {
    this.pool(poolId);
    const workers = this.poolWorkers(poolId);
    const stats: PoolStats = { poolId, pendingRuns: this.queuedRuns(poolId).length, workers: { total: workers.length, idle: 0, busy: 0, drained: 0, offline: 0 } };
    const active = this.activeRunsByWorker();
    for (const w of workers) {
      const s = this.workerState(w, active);
      if (w.drained) stats.workers.drained++;
      if (s === 'busy') stats.workers.busy++;
      else if (s === 'offline') stats.workers.offline++;
      else if (s === 'idle' && !w.drained) stats.workers.idle++;
    }
    // The demand itself: equal revisions, equal demand (no counter to keep across restarts).
    stats.revision = `${stats.pendingRuns}/${stats.workers.busy}`;
    return stats;
  }

  /**
   * The pool's stats once their revision differs from `revision`, or after
   * `timeoutMs` (a long poll: the demand channel of a pool with no worker).
   * Without a revision, or with one that is stale already, it answers at once.
   */
  async waitForPoolStats(poolId: string, revision: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<PoolStats> {
    const now = this.poolStats(poolId);
    if (revision === undefined || now.revision !== revision) return now;
    return new Promise<PoolStats>((resolve) => {
      const waiters = this.demandWaiters.get(poolId) ?? new Set<() => void>();
      this.demandWaiters.set(poolId, waiters);
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(check);
        if (waiters.size === 0) this.demandWaiters.delete(poolId);
        resolve(this.poolStats(poolId));
      };
      const check = (): void => {
        if (this.poolStats(poolId).revision !== revision) done();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      waiters.add(check);
    });
  }

  /** Every change of a pool's runs or workers passes here (see schedulePool): long polls look again. */
  private notifyDemand(poolId: string): void {
    for (const check of [...(this.demandWaiters.get(poolId) ?? [])]) check();
  }

  // ---- workers -----------------------------------------------------------

  /** The pool and current certificate serial of a registered worker (the broker's authentication uses them). */
  workerAuth(workerId: string): WorkerAuth | undefined {
    const w = this.data.workers[workerId];
    return w === undefined ? undefined : { poolId: w.poolId, serial: normalizeSerial(w.certSerial) };
  }

  /** Certificates revoked and not yet expired, for the CRL. */
  revokedCertificates(): RevokedCertificate[] {
    return Object.entries(this.data.revoked).map(([serial, r]) => ({ serial, revokedAt: new Date(r.revokedAt) }));
  }

  /** Revokes a certificate the backend issued outside registration (see `kickByTakeover`); persisted by the caller. */
  revokeExtra(workerId: string, serial: string, expiresAt: string): void {
    this.revoke(workerId, serial, expiresAt);
  }

  /** Marks a certificate as no longer valid; persisted by the caller. */
  private revoke(workerId: string, serial: string | undefined, expiresAt: string | undefined): void {
    if (serial === undefined || serial === '') return;
    // Records from before certificates had a known end are kept for the longest lifetime a certificate ever had.
    const expires = expiresAt ?? new Date(Date.now() + 5 * 366 * 24 * 3600_000).toISOString();
    this.data.revoked[normalizeSerial(serial)] = { revokedAt: new Date().toISOString(), expiresAt: expires, workerId };
  }

  private poolWorkers(poolId: string): WorkerRecord[] {
    return Object.values(this.data.workers).filter((w) => w.poolId === poolId);
  }

  private worker(poolId: string, workerId: string): WorkerRecord {
    const w = this.data.workers[workerId];
    if (!w || w.poolId !== poolId) throw new ApiError(404, 'unknown-worker', `worker ${JSON.stringify(workerId)} does not exist in pool ${poolId}`);
    return w;
  }

  private activeRun(workerId: string): RunRecord | undefined {
    for (const r of Object.values(this.data.runs)) if (r.workerId === workerId && ACTIVE_RUN_STATES.has(r.state)) return r;
    return undefined;
  }

  /** Worker id -> its active run, in one pass over the runs (for whole-pool views). */
  private activeRunsByWorker(): Map<string, RunRecord> {
    const m = new Map<string, RunRecord>();
    for (const r of Object.values(this.data.runs)) if (r.workerId && ACTIVE_RUN_STATES.has(r.state)) m.set(r.workerId, r);
    return m;
  }

  /** The API's view: busy (has a run), offline, or what the worker reported. */
  private workerState(w: WorkerRecord, active: Map<string, RunRecord> = this.activeRunsByWorker()): 'busy' | 'offline' | WorkerState {
    if (active.has(w.id)) return 'busy';
    const p = this.presence.get(w.id);
    if (!p || !p.online) return 'offline';
    return p.reported;
  }

  async register(poolId: string, csrPem: unknown, requestedId?: unknown): Promise<RegisterResponse> {
    this.pool(poolId);
    if (requestedId !== undefined && (typeof requestedId !== 'string' || !ACCEPTED_WORKER_ID.test(requestedId))) {
      throw new ApiError(400, 'bad-request', `field "workerId" must be 10-64 letters and digits, got ${JSON.stringify(requestedId)}`);
    }
    this.checkWorkerId(poolId, requestedId);
    if (typeof csrPem !== 'string') throw new ApiError(400, 'bad-request', 'field "csr" must be a PEM certificate request string');
    let csr: VerifiedCsr;
    try {
      csr = await verifyCsrPem(csrPem, workerKeyTypesUpTo(this.protocolVersion));
    } catch (err) {
      const note = err instanceof CsrKeyTypeError ? ` (this backend speaks protocol version ${this.protocolVersion})` : '';
      throw new ApiError(400, 'bad-request', `${(err as Error).message}${note}`);
    }
    const workerId = typeof requestedId === 'string' ? requestedId : ulid();
    const certificatePem = await this.opts.ca.issueClient(csr.publicKeyPem, workerId, poolId, this.opts.workerCertLifetimeMs);
    // Checked again after the awaits, against what another request may have done meanwhile.
    this.pool(poolId);
    const existing = this.checkWorkerId(poolId, workerId);
    const issued = new X509Certificate(certificatePem);
    const serial = normalizeSerial(issued.serialNumber);
    const notAfter = new Date(issued.validTo).toISOString();
    if (existing) {
      // A repeated registration (a new key, a renewal) keeps the worker's drain state and runs; only
      // the new certificate is valid from now on.
      this.revoke(workerId, existing.certSerial, existing.certNotAfter);
      existing.certSerial = serial;
      existing.certNotAfter = notAfter;
    } else {
      this.data.workers[workerId] = { id: workerId, poolId, drained: false, registeredAt: new Date().toISOString(), certSerial: serial, certNotAfter: notAfter };
    }
    await this.opts.store.persist();
    if (existing) this.opts.onRevoked?.();
    this.opts.log.info(existing ? 'worker registered again' : 'worker registered', { poolId, workerId, serial, notAfter });
    return { workerId, certificatePem, caPem: this.opts.ca.certPem };
  }

  /** The worker record an id chosen by the caller already has in this pool; 409 when the id belongs to another pool. */
  private checkWorkerId(poolId: string, requestedId: unknown): WorkerRecord | undefined {
    if (typeof requestedId !== 'string') return undefined;
    const existing = this.data.workers[requestedId];
    if (existing && existing.poolId !== poolId) {
      throw new ApiError(409, 'conflict', `worker id ${JSON.stringify(requestedId)} is already registered in another pool`);
    }
    // An id is never reused in another pool, even after deregistration: brokers key identities by id alone.
    const retiredIn = this.data.retiredWorkers[requestedId];
    if (retiredIn !== undefined && retiredIn !== poolId) {
      throw new ApiError(409, 'conflict', `worker id ${JSON.stringify(requestedId)} was used in another pool and cannot be registered again`);
    }
    return existing;
  }

  /**
   * Removes a worker. A run it had not accepted goes back to the queue; one
   * it had accepted fails, since nobody will report on it any more.
   */
  async deregister(poolId: string, workerId: string): Promise<void> {
    const record = this.worker(poolId, workerId);
    const run = this.activeRun(workerId);
    if (run) {
      if (run.state === 'scheduled') this.requeue(run);
      else this.finish(run, 'failed', `worker ${workerId} was deregistered while the run was in progress`);
    }
    delete this.data.workers[workerId];
    this.data.retiredWorkers[workerId] = poolId;
    this.revoke(workerId, record.certSerial, record.certNotAfter);
    this.presence.delete(workerId);
    await this.opts.store.persist();
    this.opts.log.info('worker deregistered', { poolId, workerId });
    this.opts.onRevoked?.();
    this.opts.onWorkerRemoved?.(workerId);
    this.scheduleAll();
  }

  /** Stops sending new runs to the worker; `busy` says whether it has one. */
  async drain(poolId: string, workerId: string): Promise<{ busy: boolean }> {
    const w = this.worker(poolId, workerId);
    w.drained = true;
    await this.opts.store.persist();
    const busy = this.activeRun(workerId) !== undefined;
    this.opts.log.info('worker drained', { poolId, workerId, busy });
    return { busy };
  }

  async undrain(poolId: string, workerId: string): Promise<void> {
    const w = this.worker(poolId, workerId);
    w.drained = false;
    await this.opts.store.persist();
    this.opts.log.info('worker undrained', { poolId, workerId });
    this.scheduleAll();
  }

  // ---- runs --------------------------------------------------------------

  async createRun(input: { poolId: unknown; runnerImage?: unknown; launcherImage?: unknown; env?: unknown; timeouts?: unknown; script?: unknown }): Promise<{ id: string }> {
    if (typeof input.poolId !== 'string') throw new ApiError(400, 'bad-request', 'field "poolId" must be a string');
    this.pool(input.poolId);
    const script = input.script === undefined ? undefined : checkScript(input.script);
    const scriptRef: ScriptRef | undefined = script === undefined ? undefined : { sha256: createHash('sha256').update(script).digest('hex'), bytes: script.length };
    // Checked with the workers' own validators: a run they would refuse is refused here, with the
    // field named, instead of being re-sent to a worker that rejects it forever.
    const draft = {
      type: 'schedule',
      version: MESSAGE_VERSION,
      runId: ulid(),
      runnerImage: input.runnerImage ?? this.opts.defaultRunnerImage,
      launcherImage: input.launcherImage ?? this.opts.defaultLauncherImage,
      env: input.env ?? {},
      timeouts: input.timeouts ?? {},
      ...(scriptRef === undefined ? {} : { script: scriptRef }),
    };
    const checked = checkMessage<ScheduleMessage>(draft, ['schedule']);
    if (!checked.ok) throw new ApiError(400, 'bad-request', checked.reason.replace(/^invalid "schedule" message: /, ''));
    const size = encodeMessage(checked.message).length;
    if (size > MAX_MESSAGE_BYTES) throw new ApiError(400, 'bad-request', `the run's schedule message would be ${size} bytes, more than ${MAX_MESSAGE_BYTES}: fields "env" and the images are too large`);
    const { runnerImage, launcherImage, env, timeouts } = checked.message;
    const now = new Date().toISOString();
    const run: RunRecord = {
      id: checked.message.runId,
      poolId: input.poolId,
      state: 'queued',
      workerId: null,
      reason: null,
      exitCode: null,
      runnerImage,
      launcherImage,
      env,
      timeouts,
      ...(scriptRef === undefined ? {} : { script: scriptRef }),
      stopRequested: false,
      createdAt: now,
      updatedAt: now,
    };
    // The script is on disk before the run exists: no worker is ever sent a run whose script is missing.
    if (script !== undefined) await this.opts.files.writeScript(run.id, script);
    this.data.runs[run.id] = run;
    await this.opts.store.persist();
    this.opts.log.info('run queued', { runId: run.id, poolId: run.poolId });
    this.schedulePool(run.poolId);
    return { id: run.id };
  }

  private run(runId: string): RunRecord {
    const r = this.data.runs[runId];
    if (!r) throw new ApiError(404, 'unknown-run', `run ${JSON.stringify(runId)} does not exist`);
    return r;
  }

  async getRun(runId: string): Promise<RunView> {
    const r = this.run(runId);
    const log = await this.opts.files.state(r.id, r.log ?? {});
    return {
      id: r.id,
      poolId: r.poolId,
      state: r.state,
      workerId: r.workerId,
      reason: r.reason,
      exitCode: r.exitCode,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      script: r.script ?? null,
      log: { bytes: log.length, complete: log.complete, truncated: log.truncated },
    };
  }

  async listRuns(poolId?: string): Promise<RunView[]> {
    if (poolId !== undefined) this.pool(poolId);
    const runs = Object.values(this.data.runs).filter((r) => poolId === undefined || r.poolId === poolId);
    return Promise.all(runs.map((r) => this.getRun(r.id)));
  }

  /** Whether a follower of the run's log may stop: nothing more will come. */
  async logEnded(runId: string): Promise<boolean> {
    const r = this.run(runId);
    return TERMINAL_RUN_STATES.has(r.state) || r.log?.complete === true;
  }

  // ---- run scripts and logs (worker API) ----------------------------------

  /**
   * A run of the pool, as the pool's signed calls may see it. A run of
   * another pool is answered like one that does not exist: a pool's key
   * reveals nothing of other pools' runs.
   */
  private runOfPool(poolId: string, runId: string): RunRecord {
    const r = this.data.runs[runId];
    if (!r || r.poolId !== poolId) throw new ApiError(404, 'unknown-run', `run ${JSON.stringify(runId)} does not exist in pool ${poolId}`);
    return r;
  }

  /** A run the pool's worker has been sent: only then may its log be written. */
  private assignedRunOfPool(poolId: string, runId: string): RunRecord {
    const r = this.runOfPool(poolId, runId);
    if (r.workerId === null) throw new ApiError(409, 'conflict', `run ${runId} has not been sent to a worker; it has no log yet`);
    return r;
  }

  async runScript(poolId: string, runId: string): Promise<Buffer> {
    const r = this.runOfPool(poolId, runId);
    if (r.script === undefined) throw new ApiError(404, 'not-found', `run ${runId} has no script`);
    return this.opts.files.readScript(r.id);
  }

  logState(poolId: string, runId: string): Promise<RunLogState> {
    const r = this.runOfPool(poolId, runId);
    return this.opts.files.state(r.id, r.log ?? {});
  }

  async appendLog(poolId: string, runId: string, offset: number, bytes: Buffer): Promise<RunLogState> {
    const r = this.assignedRunOfPool(poolId, runId);
    r.log ??= {};
    return this.logCall(() => this.opts.files.append(r.id, offset, bytes, r.log as LogMeta));
  }

  async completeLog(poolId: string, runId: string, length: unknown): Promise<RunLogState> {
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) throw new ApiError(400, 'bad-request', `field "length" must be a byte count, got ${JSON.stringify(length)}`);
    const r = this.assignedRunOfPool(poolId, runId);
    r.log ??= {};
    const state = await this.logCall(() => this.opts.files.complete(r.id, length, r.log as LogMeta));
    this.opts.log.info('run log complete', { runId: r.id, bytes: state.length, truncated: state.truncated });
    return state;
  }

  private async logCall(fn: () => Promise<RunLogState>): Promise<RunLogState> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof LogConflict) throw new ApiError(409, 'conflict', err.message);
      throw err;
    }
  }

  /** Stops a run: at once if still queued, otherwise by telling its worker (re-sent until it reports an end). */
  async stopRun(runId: string): Promise<RunView> {
    const r = this.run(runId);
    if (r.state === 'queued') {
      this.finish(r, 'stopped', 'stopped before it was scheduled');
    } else if (r.state === 'scheduled') {
      // Not accepted yet: end it here, and tell the worker in case the
      // schedule reached it (a stop for a run it never started is a no-op).
      r.stopRequested = true;
      const workerId = r.workerId;
      this.finish(r, 'stopped', 'stopped before the worker accepted it');
      if (workerId && this.sender) {
        this.sender.send(r.poolId, workerId, { type: 'stop', version: MESSAGE_VERSION, runId: r.id });
        this.counters.stopsSent++;
      }
    } else if (ACTIVE_RUN_STATES.has(r.state) && !r.stopRequested) {
      r.stopRequested = true;
      r.updatedAt = new Date().toISOString();
      this.deliveries.delete(r.id);
      this.deliver(r, Date.now());
    }
    await this.opts.store.persist();
    return this.getRun(runId);
  }

  private queuedRuns(poolId: string): RunRecord[] {
    return Object.values(this.data.runs).filter((r) => r.poolId === poolId && r.state === 'queued');
  }

  private requeue(run: RunRecord): void {
    run.state = 'queued';
    run.workerId = null;
    run.updatedAt = new Date().toISOString();
    this.deliveries.delete(run.id);
  }

  private finish(run: RunRecord, state: 'finished' | 'failed' | 'stopped', reason: string | null, exitCode?: number): void {
    const workerId = run.workerId;
    run.state = state;
    run.reason = reason;
    if (exitCode !== undefined) run.exitCode = exitCode;
    run.updatedAt = new Date().toISOString();
    this.deliveries.delete(run.id);
    this.opts.files.notify(run.id);
    this.opts.log.info('run ended', { runId: run.id, poolId: run.poolId, workerId, state, reason });
    if (workerId) {
      const p = this.presence.get(workerId);
      if (p) p.idleSince = Date.now();
    }
  }

  // ---- scheduling ----------------------------------------------------------

  /**
   * Assigns queued runs (oldest first) to available workers of the pool:
   * registered, undrained, online, reporting `idle`, with no run. Among them
   * the one idle the longest wins: load spreads evenly, and a worker that has
   * just finished gets time to clean up its last run's Pod before the next.
   */
  schedulePool(poolId: string): void {
    this.notifyDemand(poolId);
    const queued = this.queuedRuns(poolId).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    if (queued.length === 0) return;
    const active = this.activeRunsByWorker();
    const candidates = this.poolWorkers(poolId)
      .filter((w) => {
        const p = this.presence.get(w.id);
        return !w.drained && p?.online === true && p.reported === 'idle' && !active.has(w.id);
      })
      .sort((a, b) => (this.presence.get(a.id)?.idleSince ?? 0) - (this.presence.get(b.id)?.idleSince ?? 0));
    let changed = false;
    const now = Date.now();
    for (let i = 0; i < Math.min(queued.length, candidates.length); i++) {
      const run = queued[i] as RunRecord;
      const worker = candidates[i] as WorkerRecord;
      run.state = 'scheduled';
      run.workerId = worker.id;
      run.updatedAt = new Date(now).toISOString();
      changed = true;
      this.opts.log.info('run scheduled', { runId: run.id, poolId, workerId: worker.id });
    }
    if (!changed) return;
    this.notifyDemand(poolId);
    // Send only once the assignment is durable: a restart must not re-assign a run a worker already has.
    this.opts.store.persist().then(
      () => {
        for (const r of queued) if (r.state === 'scheduled') this.deliver(r, Date.now());
      },
      (err: Error) => this.opts.log.error('state write failed; schedule messages held back', { error: err.message }),
    );
  }

  scheduleAll(): void {
    for (const id of Object.keys(this.data.pools)) this.schedulePool(id);
  }

  /** Sends the run's pending schedule or stop if it is due (first time, or backoff elapsed). */
  private deliver(run: RunRecord, now: number, force = false): void {
    if (!this.sender || !run.workerId) return;
    const d = this.deliveries.get(run.id);
    if (d && !force) {
      const wait = Math.min(this.redeliverMs * 2 ** (d.attempts - 1), 300_000);
      if (now - d.lastSent < wait) return;
    }
    const msg: ScheduleMessage | StopMessage = run.stopRequested
      ? { type: 'stop', version: MESSAGE_VERSION, runId: run.id }
      : {
          type: 'schedule',
          version: MESSAGE_VERSION,
          runId: run.id,
          runnerImage: run.runnerImage,
          launcherImage: run.launcherImage,
          env: run.env,
          timeouts: run.timeouts,
          ...(run.script === undefined ? {} : { script: run.script }),
        };
    this.sender.send(run.poolId, run.workerId, msg);
    if (msg.type === 'schedule') this.counters.schedulesSent++;
    else this.counters.stopsSent++;
    this.deliveries.set(run.id, { lastSent: now, attempts: (d?.attempts ?? 0) + 1 });
    if (d) this.opts.log.info(`${msg.type} re-sent`, { runId: run.id, workerId: run.workerId, attempt: (d.attempts ?? 0) + 1 });
  }

  /**
   * Periodic work: mark silent workers offline, and re-send schedules not yet
   * accepted and stops not yet obeyed, with exponential backoff.
   */
  tick(now = Date.now()): void {
    for (const [id, p] of this.presence) {
      if (p.online && now - p.lastSeen > this.offlineAfterMs) {
        p.online = false;
        this.opts.log.info('worker offline (no heartbeat)', { workerId: id });
      }
    }
    for (const r of Object.values(this.data.runs)) {
      if (!r.workerId) continue;
      const pending = r.state === 'scheduled' || (r.stopRequested && ACTIVE_RUN_STATES.has(r.state));
      if (pending && this.presence.get(r.workerId)?.online) this.deliver(r, now);
    }
  }

  // ---- worker messages -----------------------------------------------------

  /** Counts and logs an invalid worker message; it is dropped. */
  rejectMessage(topic: string, reason: string): void {
    this.counters.rejectedMessages++;
    this.opts.log.warn('worker message rejected', { topic, reason, rejectedTotal: this.counters.rejectedMessages });
  }

  /** Handles a validated message from a worker; resolves once its effects are durable. */
  async handleWorkerMessage(topic: string, poolId: string, workerId: string, msg: StateMessage | RunStatusMessage | RejectMessage): Promise<void> {
    const worker = this.data.workers[workerId];
    if (!worker || worker.poolId !== poolId) {
      this.rejectMessage(topic, worker ? `worker ${workerId} belongs to another pool` : `worker ${workerId} is not registered`);
      return;
    }
    const now = Date.now();
    let p = this.presence.get(workerId);
    const wasOnline = p?.online === true;
    if (!p) {
      p = { online: false, reported: 'offline', lastSeen: now, idleSince: now };
      this.presence.set(workerId, p);
    }
    p.lastSeen = now;
    if (msg.type === 'state') {
      p.online = msg.state !== 'offline';
      if (msg.state === 'idle' && p.reported !== 'idle') p.idleSince = now;
      p.reported = msg.state;
      if (!wasOnline && p.online) this.opts.log.info('worker online', { poolId, workerId, state: msg.state });
      if (!p.online) this.opts.log.info('worker offline', { poolId, workerId });
      await this.reconcileWorkerState(worker, msg, now, !wasOnline && p.online);
      this.schedulePool(poolId);
      return;
    }
    p.online = true;
    if (msg.type === 'reject') await this.applyReject(worker, msg);
    else await this.applyRunStatus(worker, msg);
    this.schedulePool(poolId);
  }

  /**
   * The worker refused a schedule. Re-sending it unchanged cannot help for
   * long: after `maxScheduleRejections` the run fails with the worker's reason
   * and the worker is free for the next run.
   */
  private async applyReject(worker: WorkerRecord, msg: RejectMessage): Promise<void> {
    const run = this.data.runs[msg.runId];
    if (!run || run.workerId !== worker.id || run.state !== 'scheduled') {
      this.opts.log.warn('schedule rejection for a run not awaiting this worker ignored', { workerId: worker.id, runId: msg.runId });
      return;
    }
    run.rejections = (run.rejections ?? 0) + 1;
    const max = this.opts.maxScheduleRejections ?? 3;
    this.opts.log.warn('worker rejected a schedule', { runId: run.id, workerId: worker.id, rejections: run.rejections, reason: msg.reason });
    if (run.rejections >= max) this.finish(run, 'failed', `the worker rejected the run's schedule ${run.rejections} times: ${msg.reason}`);
    await this.opts.store.persist();
  }

  private async reconcileWorkerState(worker: WorkerRecord, msg: StateMessage, now: number, cameOnline: boolean): Promise<void> {
    const run = this.activeRun(worker.id);
    if (!run) return;
    if (run.state === 'scheduled' || run.stopRequested) {
      // The worker is (back) online and has not acted on the message yet: send it again.
      if (cameOnline || msg.state === 'idle') this.deliver(run, now, cameOnline);
      return;
    }
    if (msg.state === 'idle') {
      // Statuses and states travel on one topic in order, so a worker that
      // says idle has no memory of a run it accepted: fail it rather than
      // keep a phantom-busy worker.
      this.finish(run, 'failed', `worker ${worker.id} reported idle while the run was ${run.state}; the run was lost`);
      await this.opts.store.persist();
    }
  }

  private async applyRunStatus(worker: WorkerRecord, msg: RunStatusMessage): Promise<void> {
    const run = this.data.runs[msg.runId];
    if (!run || run.workerId !== worker.id) {
      this.opts.log.warn('run status for a run not assigned to this worker ignored', { workerId: worker.id, runId: msg.runId, status: msg.status });
      return;
    }
    // Terminal states are final; QoS 1 may deliver a status twice or late.
    if (TERMINAL_RUN_STATES.has(run.state)) return;
    const rank: Record<RunState, number> = { queued: 0, scheduled: 1, preparing: 2, running: 3, finished: 4, failed: 4, stopped: 4 };
    let next: RunState;
    switch (msg.status) {
      case 'accepted':
      case 'pod-created':
        next = 'preparing';
        break;
      case 'running':
        next = 'running';
        break;
      default:
        next = msg.status;
    }
    if (rank[next] <= rank[run.state]) return;
    if (next === 'finished' || next === 'failed' || next === 'stopped') {
      this.finish(run, next, msg.reason ?? null, msg.exitCode);
    } else {
      run.state = next;
      run.updatedAt = new Date().toISOString();
      if (!run.stopRequested) this.deliveries.delete(run.id);
      this.opts.log.info('run progressed', { runId: run.id, workerId: worker.id, state: next });
    }
    await this.opts.store.persist();
  }

  /** Workers known to be online right now (for tests and status). */
  onlineWorkers(): number {
    let n = 0;
    for (const p of this.presence.values()) if (p.online) n++;
    return n;
  }
}
