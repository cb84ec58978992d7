import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';

/**
 * Pool-signed requests: how the controller proves to the backend that a
 * worker call (register, deregister, drain, undrain, stats) comes from the
 * holder of the pool's private key, without a shared secret on the wire.
 *
 * The client signs a canonical string (see {@link canonicalRequest}) that binds
 * the method, path, pool id, a timestamp, a random nonce and the SHA-256 of the
 * body. The backend verifies it with the pool's public key, rejects
 * timestamps outside {@link MAX_CLOCK_SKEW_MS} and any nonce it has seen
 * within that window, so a captured request can be neither altered nor replayed.
 */

/** First line of the canonical string; changes if the scheme ever changes. */
export const SIGNATURE_SCHEME = 'WPC1-RSA-SHA256';

/** Timestamps further than this from the server clock are refused. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Header names (lower case, as Node presents them). */
export const SIGNATURE_HEADERS = {
  poolId: 'x-wp-pool-id',
  timestamp: 'x-wp-timestamp',
  nonce: 'x-wp-nonce',
  signature: 'x-wp-signature',
  /**
   * Lowercase hex SHA-256 of the body, as signed. Lets the backend check the
   * signature before it reads the body; it then checks that the body matches.
   */
  contentSha256: 'x-wp-content-sha256',
} as const;

/** The headers every signed request must carry; the body hash is sent too but not required of older clients. */
const REQUIRED_HEADERS = [SIGNATURE_HEADERS.poolId, SIGNATURE_HEADERS.timestamp, SIGNATURE_HEADERS.nonce, SIGNATURE_HEADERS.signature];

/** Paths of the pool-signed endpoints. */
export const workerApiPaths = {
  /** `POST`, body {@link RegisterRequest}, 201 {@link RegisterResponse}. */
  register: (poolId: string): string => `/api/pools/${encodeURIComponent(poolId)}/workers`,
  /** `DELETE`, 200 `{}`. */
  deregister: (poolId: string, workerId: string): string =>
    `/api/pools/${encodeURIComponent(poolId)}/workers/${encodeURIComponent(workerId)}`,
  /** `POST`, 200 {@link DrainResponse}. */
  drain: (poolId: string, workerId: string): string =>
    `/api/pools/${encodeURIComponent(poolId)}/workers/${encodeURIComponent(workerId)}/drain`,
  /** `POST`, 200 `{}`. */
  undrain: (poolId: string, workerId: string): string =>
    `/api/pools/${encodeURIComponent(poolId)}/workers/${encodeURIComponent(workerId)}/undrain`,
  /**
   * `GET`, 200 {@link PoolStats}. Query `waitFor=<revision>&timeoutSeconds=<1..60>`:
   * answer once the revision differs from `waitFor`, or after the timeout.
   */
  stats: (poolId: string): string => `/api/pools/${encodeURIComponent(poolId)}/stats`,
  /** `GET`, 200 the script's bytes (`text/plain`), for a run of the pool that has one. */
  runScript: (poolId: string, runId: string): string => `/api/pools/${encodeURIComponent(poolId)}/runs/${encodeURIComponent(runId)}/script`,
  /** `GET`, 200 {@link RunLogState}. */
  runLog: (poolId: string, runId: string): string => `/api/pools/${encodeURIComponent(poolId)}/runs/${encodeURIComponent(runId)}/log`,
  /**
   * `PUT`, the log's bytes from byte `offset` on (`application/octet-stream`),
   * 200 {@link RunLogState}. The offset is in the path so that it is signed.
   */
  runLogAppend: (poolId: string, runId: string, offset: number): string =>
    `/api/pools/${encodeURIComponent(poolId)}/runs/${encodeURIComponent(runId)}/log/${offset}`,
  /** `POST`, body {@link CompleteLogRequest}, 200 {@link RunLogState}. */
  runLogComplete: (poolId: string, runId: string): string =>
    `/api/pools/${encodeURIComponent(poolId)}/runs/${encodeURIComponent(runId)}/log/complete`,
};

/** What the backend holds of a run's log (its `worker` container's output). */
export interface RunLogState {
  /** Bytes of the run's output stored: the offset the next append starts at. */
  length: number;
  /** No more bytes will be stored: the worker said so, or the log reached the backend's limit. */
  complete: boolean;
  /** The log reached the backend's limit: the rest of the output was dropped and a marker says so. */
  truncated: boolean;
  /** The backend's per-run limit, in bytes. */
  limit: number;
}

/** Body of a log completion: the length the worker read in total, which must be what the backend holds. */
export interface CompleteLogRequest {
  length: number;
}

/** Body of a registration. */
export interface RegisterRequest {
  /** PEM CSR made with the worker's new private key. */
  csr: string;
  /**
   * Worker id chosen by the caller (10-64 letters and digits; a ULID in the
   * controller). Optional: the backend assigns one when absent. Registering
   * an id that already exists in the same pool is allowed and returns a new
   * certificate for the CSR's key, so a caller interrupted after the request
   * can simply repeat it. An id that exists in another pool is refused (409).
   */
  workerId?: string;
}

/** Worker ids the backend accepts from callers; never collides with the backend's own identity. */
export const ACCEPTED_WORKER_ID = /^[0-9A-Za-z]{10,64}$/;

/** Answer to a registration. */
export interface RegisterResponse {
  /** Assigned worker id (a ULID); also the certificate's CN and the MQTT client id. */
  workerId: string;
  /** PEM client certificate for the worker's key, signed by the backend CA. */
  certificatePem: string;
  /** PEM of the CA (same as the token's `caCert`). */
  caPem: string;
}

/** Answer to a drain. */
export interface DrainResponse {
  /** The worker has a run in progress (or one on its way): undrain it or wait, do not remove it. */
  busy: boolean;
}

/** Pool counters for metrics and autoscaling. */
export interface PoolStats {
  poolId: string;
  /**
   * Changes whenever `pendingRuns` or the busy count changes; pass it back to
   * wait for the next change (long poll, see `BackendClient.watchPoolStats`).
   * Absent from backends that cannot wait: callers then poll.
   */
  revision?: string;
  /** Runs queued and not yet sent to any worker. */
  pendingRuns: number;
  workers: {
    total: number;
    /** Connected, undrained, no run. */
    idle: number;
    /** Has a run (scheduled, preparing or running). */
    busy: number;
    /** Drained by the API (may also be busy). */
    drained: number;
    /** Not connected as far as the backend knows. */
    offline: number;
  };
}

/** Machine-readable causes in {@link ErrorBody}. */
export type ErrorCode =
  | 'unauthorized'
  | 'unknown-pool'
  | 'unknown-worker'
  | 'unknown-run'
  | 'conflict'
  | 'bad-request'
  | 'not-found'
  | 'internal';

/** Error body of every non-2xx answer. */
export interface ErrorBody {
  /** Human-readable cause, safe to show to users. */
  error: string;
  code?: ErrorCode;
}

/** The exact text that is signed. Lines joined by `\n`, no trailing newline. */
export function canonicalRequest(parts: {
  method: string;
  path: string;
  poolId: string;
  timestamp: string;
  nonce: string;
  /** The body, or its lowercase hex SHA-256. */
  body: Uint8Array | { readonly sha256: string };
}): string {
  const bodyHash = 'sha256' in parts.body ? parts.body.sha256 : createHash('sha256').update(parts.body).digest('hex');
  return [SIGNATURE_SCHEME, parts.method.toUpperCase(), parts.path, parts.poolId, parts.timestamp, parts.nonce, bodyHash].join('\n');
}

/**
 * Signs a request; returns the headers to send with it.
 *
 * @param privateKey the pool private key (PEM or a KeyObject made once and reused).
 */
export function signRequest(req: {
  method: string;
  path: string;
  poolId: string;
  body: Uint8Array;
  privateKey: string | KeyObject;
  now?: number;
  nonce?: string;
}): Record<string, string> {
  const timestamp = String(req.now ?? Date.now());
  const nonce = req.nonce ?? randomBytes(16).toString('hex');
  const key = typeof req.privateKey === 'string' ? createPrivateKey(req.privateKey) : req.privateKey;
  const text = canonicalRequest({ method: req.method, path: req.path, poolId: req.poolId, timestamp, nonce, body: req.body });
  const signature = cryptoSign('sha256', Buffer.from(text, 'utf8'), key).toString('base64');
  return {
    [SIGNATURE_HEADERS.contentSha256]: createHash('sha256').update(req.body).digest('hex'),
    [SIGNATURE_HEADERS.poolId]: req.poolId,
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: signature,
  };
}

/** Remembers nonces so each is accepted once. */
export interface NonceStore {
  /** Returns false if `nonce` was seen for this pool and has not expired; otherwise records it until `expiresAt`. */
  remember(poolId: string, nonce: string, expiresAt: number, now: number): boolean;
}

/** In-memory {@link NonceStore} (the backend persists its own). */
export class MemoryNonceStore implements NonceStore {
  private readonly seen = new Map<string, number>();
  /** Nonces held. Bounded: once over 10 000, the expired ones are dropped on the next call. */
  get size(): number {
    return this.seen.size;
  }
  remember(poolId: string, nonce: string, expiresAt: number, now: number): boolean {
    if (this.seen.size > 10_000) for (const [k, exp] of this.seen) if (exp <= now) this.seen.delete(k);
    const key = `${poolId}/${nonce}`;
    const exp = this.seen.get(key);
    if (exp !== undefined && exp > now) return false;
    this.seen.set(key, expiresAt);
    return true;
  }
}

export type VerifyResult = { ok: true; poolId: string } | { ok: false; status: 401; reason: string };

let decoyKey: KeyObject | undefined;
/** Verified against for unknown pools, so that they cost the same work as known ones. */
function decoy(): KeyObject {
  decoyKey ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  return decoyKey;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
const TIMESTAMP = /^\d{1,16}$/;

/**
 * Verifies a pool-signed request (backend side).
 *
 * @param publicKeyFor the pool's public key PEM, or undefined for an unknown pool.
 * @param expectedPoolId the pool id taken from the path, which must match the signed one.
 */
export function verifySignedRequest(req: {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The body, or (to check before reading it) the hash its sender claims in {@link SIGNATURE_HEADERS.contentSha256}. */
  body: Uint8Array | { readonly sha256: string };
  expectedPoolId: string;
  publicKeyFor: (poolId: string) => string | KeyObject | undefined;
  nonces: NonceStore;
  now?: number;
}): VerifyResult {
  const now = req.now ?? Date.now();
  const header = (name: string): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  for (const name of REQUIRED_HEADERS) {
    if (!header(name)) return { ok: false, status: 401, reason: `request is not signed: header ${name} is missing` };
  }
  const poolId = header(SIGNATURE_HEADERS.poolId) as string;
  const timestamp = header(SIGNATURE_HEADERS.timestamp) as string;
  const nonce = header(SIGNATURE_HEADERS.nonce) as string;
  const signature = header(SIGNATURE_HEADERS.signature) as string;
  if (poolId !== req.expectedPoolId) {
    return { ok: false, status: 401, reason: `signed pool id ${JSON.stringify(poolId)} does not match the pool in the path ${JSON.stringify(req.expectedPoolId)}` };
  }
  if ('sha256' in req.body && !SHA256_HEX.test(req.body.sha256)) {
    return { ok: false, status: 401, reason: `header ${SIGNATURE_HEADERS.contentSha256} must be the lowercase hex SHA-256 of the body` };
  }
  // An unknown pool gets the answer of a wrong key, after the same work: whether a pool exists is
  // nobody's business before the signature holds.
  const pub = req.publicKeyFor(poolId) ?? decoy();
  if (!TIMESTAMP.test(timestamp)) return { ok: false, status: 401, reason: `header ${SIGNATURE_HEADERS.timestamp} must be milliseconds since the epoch, got ${JSON.stringify(timestamp.slice(0, 40))}` };
  if (!NONCE.test(nonce)) return { ok: false, status: 401, reason: `header ${SIGNATURE_HEADERS.nonce} must be 16-128 characters of [A-Za-z0-9_-]` };
  const text = canonicalRequest({ method: req.method, path: req.path, poolId, timestamp, nonce, body: req.body });
  let valid: boolean;
  try {
    // verify takes the PEM or the KeyObject as it is; a key that does not parse throws.
    valid = cryptoVerify('sha256', Buffer.from(text, 'utf8'), pub, Buffer.from(signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) {
    return { ok: false, status: 401, reason: `request signature does not verify with the public key of pool ${poolId}: wrong pool private key, or the request was altered` };
  }
  // Checked after the signature so that nobody but the key holder can burn nonces or probe the clock.
  const skew = Number(timestamp) - now;
  if (Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
    return { ok: false, status: 401, reason: `request timestamp is ${Math.round(skew / 1000)} s off the backend clock (allowed ±${MAX_CLOCK_SKEW_MS / 1000} s): check the clocks, or this is a replayed request` };
  }
  // Remembered one millisecond past the last instant its timestamp is accepted (skew of exactly
  // MAX_CLOCK_SKEW_MS passes, and a nonce is forgotten at its expiry): without it, a replay at that
  // very millisecond was accepted.
  if (!req.nonces.remember(poolId, nonce, Number(timestamp) + MAX_CLOCK_SKEW_MS + 1, now)) {
    return { ok: false, status: 401, reason: 'request nonce was already used: replayed request refused' };
  }
  return { ok: true, poolId };
}
