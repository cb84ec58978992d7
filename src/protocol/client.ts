import { createPrivateKey, type KeyObject } from 'node:crypto';
import https from 'node:https';
import {
  signRequest,
  workerApiPaths,
  type CompleteLogRequest,
  type DrainResponse,
  type ErrorBody,
  type ErrorCode,
  type PoolStats,
  type RegisterRequest,
  type RegisterResponse,
  type RunLogState,
} from './registration.js';
import { assertRsaPrivateKeyPem, type PoolToken } from './token.js';

const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
]);

/** Base of the errors {@link BackendClient} throws. */
export class BackendError extends Error {
  /** HTTP status, when the backend answered. */
  readonly status: number | undefined;
  /** Machine-readable cause from the backend's error body, e.g. `unknown-worker`. */
  readonly code: ErrorCode | undefined;
  constructor(message: string, status: number | undefined, options?: { cause?: unknown; code?: ErrorCode }) {
    super(message, options);
    this.name = 'BackendError';
    this.status = status;
    this.code = options?.code;
  }
}

/**
 * The backend refused the request for a reason retrying will not fix (4xx:
 * wrong key, unknown pool or worker, bad CSR). The message is the backend's
 * own explanation, prefixed with the operation.
 */
export class TerminalBackendError extends BackendError {
  override readonly name = 'TerminalBackendError';
}

/** The backend was unreachable, timed out, or failed (5xx, 429): retry with backoff. */
export class RetryableBackendError extends BackendError {
  override readonly name = 'RetryableBackendError';
}

export interface BackendClientOptions {
  /** The parsed pool token. */
  token: PoolToken;
  /** The pool private key, PEM. */
  privateKeyPem: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  /** Max parallel connections to the backend; default 16. */
  maxSockets?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call; it then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** What the client itself adds to a call: a query string (not signed: the backend verifies the path) and a longer timeout. */
interface CallExtras extends CallOptions {
  readonly query?: string;
  readonly timeoutMs?: number;
}

/** A request body: JSON, or bytes sent as they are. */
type Payload = { readonly json: unknown } | { readonly bytes: Buffer } | undefined;

function isRunLogState(v: unknown): v is RunLogState {
  const o = v as Partial<RunLogState> | null;
  return typeof o === 'object' && o !== null && typeof o.length === 'number' && typeof o.complete === 'boolean' && typeof o.truncated === 'boolean' && typeof o.limit === 'number';
}

/**
 * The controller's side of the worker API, for one pool.
 *
 * HTTPS with the token's CA as the only trust anchor (a public CA cannot
 * impersonate the backend), keep-alive connections, every request signed with
 * the pool key. Safe to share; call {@link close} when the pool goes away.
 */
export class BackendClient {
  private readonly token: PoolToken;
  private readonly key: KeyObject;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;

  constructor(opts: BackendClientOptions) {
    assertRsaPrivateKeyPem(opts.privateKeyPem);
    this.token = opts.token;
    this.key = createPrivateKey(opts.privateKeyPem);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.agent = new https.Agent({ ca: opts.token.caCert, keepAlive: true, maxSockets: opts.maxSockets ?? 16 });
  }

  /**
   * Registers a worker with its CSR (see `createCsr`). With `workerId` the
   * call is idempotent: repeating it (same or new key) returns a certificate
   * for the same worker.
   */
  async register(csr: string, workerId?: string, options: CallOptions = {}): Promise<RegisterResponse> {
    const body: RegisterRequest = workerId === undefined ? { csr } : { csr, workerId };
    const res = await this.call<RegisterResponse>('register worker', 'POST', workerApiPaths.register(this.token.poolId), { json: body }, options);
    if (typeof res.workerId !== 'string' || typeof res.certificatePem !== 'string' || typeof res.caPem !== 'string') {
      throw new RetryableBackendError('register worker: backend answer lacks workerId, certificatePem or caPem', 201);
    }
    return res;
  }

  /**
   * Deregisters a worker. Idempotent: an unknown worker counts as done. A run
   * the worker had not accepted yet is queued again; one it had accepted is
   * marked failed.
   */
  async deregister(workerId: string, options: CallOptions = {}): Promise<void> {
    try {
      await this.call('deregister worker', 'DELETE', workerApiPaths.deregister(this.token.poolId, workerId), undefined, options);
    } catch (err) {
      if (err instanceof TerminalBackendError && err.code === 'unknown-worker') return;
      throw err;
    }
  }

  /**
   * Drains a worker: from now on the backend sends it no new run. `busy`
   * tells whether it has one already; then undrain it (or wait for the run to
   * end) instead of removing it.
   */
  async drain(workerId: string, options: CallOptions = {}): Promise<DrainResponse> {
    const res = await this.call<DrainResponse>('drain worker', 'POST', workerApiPaths.drain(this.token.poolId, workerId), { json: {} }, options);
    return { busy: res.busy === true };
  }

  /** Makes a drained worker eligible for runs again. */
  async undrain(workerId: string, options: CallOptions = {}): Promise<void> {
    await this.call('undrain worker', 'POST', workerApiPaths.undrain(this.token.poolId, workerId), { json: {} }, options);
  }

  /** Pool counters (pending runs; idle, busy, drained, offline workers). */
  async poolStats(options: CallOptions = {}): Promise<PoolStats> {
    return this.call<PoolStats>('get pool stats', 'GET', workerApiPaths.stats(this.token.poolId), undefined, options);
  }

  /**
   * Pool counters once they differ from `revision` (an earlier answer's), or
   * after `waitSeconds`: a long poll, so that a run queued for a pool with no
   * worker (no MQTT session to hear it on) reaches the controller at once.
   * Without `revision` it answers at once. A backend that cannot wait answers
   * at once without a revision.
   */
  async watchPoolStats(revision: string | undefined, waitSeconds: number, options: CallOptions = {}): Promise<PoolStats> {
    const query = revision === undefined ? '' : `?${new URLSearchParams({ waitFor: revision, timeoutSeconds: String(waitSeconds) }).toString()}`;
    return this.call<PoolStats>('watch pool stats', 'GET', workerApiPaths.stats(this.token.poolId), undefined, { ...options, query, timeoutMs: (waitSeconds + 15) * 1000 });
  }

  /**
   * The script of a run of this pool, as the backend holds it. The caller
   * checks it against the schedule's `script` reference.
   */
  async runScript(runId: string, options: CallOptions = {}): Promise<Buffer> {
    return this.send('get run script', 'GET', workerApiPaths.runScript(this.token.poolId, runId), undefined, options, 'text/plain');
  }

  /** How much of a run's log the backend holds, and whether it is complete. */
  async logState(runId: string, options: CallOptions = {}): Promise<RunLogState> {
    return this.logCall('get run log state', 'GET', workerApiPaths.runLog(this.token.poolId, runId), undefined, options);
  }

  /**
   * Appends the run's log bytes starting at byte `offset`. Idempotent: bytes
   * the backend holds already (same offset, same bytes) are not stored twice.
   * A gap (an offset beyond what the backend holds) or bytes that differ from
   * what it holds is a 409 `conflict`: read {@link logState} and go on from there.
   */
  async appendLog(runId: string, offset: number, bytes: Buffer, options: CallOptions = {}): Promise<RunLogState> {
    return this.logCall('append run log', 'PUT', workerApiPaths.runLogAppend(this.token.poolId, runId, offset), { bytes }, options);
  }

  /** Says the run's log is complete at `length` bytes (409 `conflict` if the backend holds another length). */
  async completeLog(runId: string, length: number, options: CallOptions = {}): Promise<RunLogState> {
    const body: CompleteLogRequest = { length };
    return this.logCall('complete run log', 'POST', workerApiPaths.runLogComplete(this.token.poolId, runId), { json: body }, options);
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async logCall(what: string, method: string, path: string, payload: Payload, options: CallOptions): Promise<RunLogState> {
    const res = await this.call<unknown>(what, method, path, payload, options);
    if (!isRunLogState(res)) throw new RetryableBackendError(`${what}: backend answer lacks length, complete, truncated or limit`, 200);
    return res;
  }

  private async call<T>(what: string, method: string, path: string, payload: Payload, options: CallExtras): Promise<T> {
    const raw = await this.send(what, method, path, payload, options, 'application/json');
    let data: unknown;
    try {
      data = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : {};
    } catch {
      data = undefined;
    }
    if (typeof data !== 'object' || data === null) throw new RetryableBackendError(`${what}: backend answered with a body that is not JSON`, 200);
    return data as T;
  }

  /** One signed request; resolves to the body of a 2xx answer, rejects with a {@link BackendError} otherwise. */
  private send(what: string, method: string, path: string, payload: Payload, options: CallExtras, accept: string): Promise<Buffer> {
    options.signal?.throwIfAborted();
    const body = payload === undefined ? Buffer.alloc(0) : 'bytes' in payload ? payload.bytes : Buffer.from(JSON.stringify(payload.json), 'utf8');
    const headers: Record<string, string> = {
      ...signRequest({ method, path, poolId: this.token.poolId, body, privateKey: this.key }),
      accept,
    };
    if (payload !== undefined) {
      headers['content-type'] = 'bytes' in payload ? 'application/octet-stream' : 'application/json';
      headers['content-length'] = String(body.length);
    }
    const url = new URL(`${path}${options.query ?? ''}`, this.token.apiUrl);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise<Buffer>((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.agent, timeout: timeoutMs, signal: options.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new RetryableBackendError(`${what}: ${err.message}`, res.statusCode, { cause: err })));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const raw = Buffer.concat(chunks);
          if (status >= 200 && status < 300) {
            resolve(raw);
            return;
          }
          const text = raw.toString('utf8');
          let data: unknown;
          try {
            data = text.length > 0 ? JSON.parse(text) : {};
          } catch {
            data = undefined;
          }
          const errBody = typeof data === 'object' && data !== null ? (data as Partial<ErrorBody>) : {};
          const serverReason =
            typeof errBody.error === 'string' ? errBody.error : text.slice(0, 200) || res.statusMessage || 'no reason given';
          const code = typeof errBody.code === 'string' ? errBody.code : undefined;
          const message = `${what}: backend answered ${status}: ${serverReason}`;
          if (status >= 400 && status < 500 && status !== 408 && status !== 429) reject(new TerminalBackendError(message, status, { code }));
          else reject(new RetryableBackendError(message, status, { code }));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // Cancelled by the caller: not the backend's failure, so not a backend error.
        if (options.signal?.aborted === true) {
          reject(options.signal.reason);
          return;
        }
        if (err.code !== undefined && TLS_TRUST_ERRORS.has(err.code)) {
          // Retrying cannot help: the token's CA is not the one the backend uses.
          reject(new TerminalBackendError(`${what}: the backend at ${this.token.apiUrl} presented a certificate the token's caCert does not accept (${err.code}): ${err.message}`, undefined, { cause: err }));
          return;
        }
        reject(new RetryableBackendError(`${what}: cannot reach the backend at ${this.token.apiUrl}: ${err.message}`, undefined, { cause: err }));
      });
      req.end(body);
    });
  }
}
