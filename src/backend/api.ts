import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JsonSyntaxError, parseJson } from '../protocol/json.js';
import { MemoryNonceStore, SIGNATURE_HEADERS, verifySignedRequest, type ErrorBody, type NonceStore } from '../protocol/registration.js';
import type { RunFiles } from './run-files.js';
import { bearerMatches } from './admin-token.js';
import type { Logger } from './log.js';
import { ApiError, type BackendService } from './service.js';
import type { StateStore } from './store.js';

/** Largest request body; the biggest legitimate one (a run with a large environment) is far below. */
export const MAX_BODY_BYTES = 1024 * 1024;
/**
 * A pool-signed request without the body-hash header must be read before its
 * signature can be checked: such bodies are capped much lower (a CSR is ~1 KiB).
 */
const MAX_UNAUTHENTICATED_BODY_BYTES = 16 * 1024;

type Auth = 'admin' | 'pool' | 'admin-or-pool' | 'none';

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A handler's answer: a status and a JSON body, or raw bytes, or a response it wrote itself. */
type Answer = [number, unknown] | { readonly status: number; readonly contentType: string; readonly bytes: Buffer } | typeof STREAMED;
const STREAMED = Symbol('streamed');

interface Route {
  method: string;
  pattern: RegExp;
  auth: Auth;
  /** The body is bytes for the handler (`raw`), not a JSON object. */
  rawBody?: boolean;
  handle: (ctx: Ctx) => Promise<Answer>;
}

interface Ctx {
  params: string[];
  body: Record<string, unknown>;
  raw: Buffer;
  query: URLSearchParams;
  req: IncomingMessage;
  res: ServerResponse;
  /** Fires when the client goes away (a long poll then stops waiting). */
  signal: AbortSignal;
}

/** Read-only signed calls whose nonce need not be on disk before the answer (see below). */
const IDEMPOTENT_READS = /^\/api\/pools\/[^/]+\/runs\/[^/]+\/(script|log)$/;

const CHUNK_BYTES = 64 * 1024;

/**
 * Writes a run's log to `res`: what the backend holds, and with `follow`
 * whatever is appended next, until the log is complete or the run ended
 * (`ended`) and everything held was sent, or the client goes away.
 */
async function streamLog(files: RunFiles, runId: string, follow: boolean, ended: () => Promise<boolean>, res: ServerResponse): Promise<void> {
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.flushHeaders();
  let position = 0;
  const buffer = Buffer.alloc(CHUNK_BYTES);
  for (;;) {
    if (gone.signal.aborted) return;
    // Read before the file: a change between the read and the wait is not missed.
    const version = files.version(runId);
    // Decided before the read: what was appended before the end was declared is read below.
    const over = !follow || (await ended());
    let read = 0;
    try {
      const fh = await open(files.logPath(runId), 'r');
      try {
        for (;;) {
          const { bytesRead } = await fh.read(buffer, 0, CHUNK_BYTES, position);
          if (bytesRead === 0) break;
          position += bytesRead;
          read += bytesRead;
          if (!res.write(Buffer.from(buffer.subarray(0, bytesRead)))) await new Promise<void>((resolve) => {
            const done = (): void => {
              res.off('drain', done);
              gone.signal.removeEventListener('abort', done);
              resolve();
            };
            res.on('drain', done);
            gone.signal.addEventListener('abort', done, { once: true });
          });
          if (gone.signal.aborted) return;
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (over) {
      gone.abort();
      res.end();
      return;
    }
    if (read === 0) await files.changedSince(runId, version, gone.signal);
  }
}

/** The longest a long poll of the pool's stats may wait, seconds. */
const MAX_STATS_WAIT_SECONDS = 60;

/** Persisted nonce store: a replayed request is refused even after a backend restart. */
class PersistentNonces implements NonceStore {
  private readonly mem = new MemoryNonceStore();
  constructor(private readonly store: StateStore) {}
  remember(poolId: string, nonce: string, expiresAt: number, now: number): boolean {
    const key = `${poolId}/${nonce}`;
    const exp = this.store.data.nonces[key];
    if (exp !== undefined && exp > now) return false;
    if (!this.mem.remember(poolId, nonce, expiresAt, now)) return false;
    this.store.data.nonces[key] = expiresAt;
    return true;
  }
}

/**
 * The HTTP API. Admin routes need `Authorization: Bearer <admin token>`;
 * worker routes need a pool signature (docs/protocol.md); drain and undrain
 * take either. Errors are `{"error", "code"}` with a message naming the cause.
 */
export function createApiHandler(opts: { service: BackendService; store: StateStore; files: RunFiles; adminToken: string; log: Logger; counters: () => Record<string, number> }) {
  const { service, log } = opts;
  const nonces = new PersistentNonces(opts.store);
  const id = '([0-9A-Za-z_-]+)';
  const routes: Route[] = [
    { method: 'GET', pattern: /^\/healthz$/, auth: 'none', handle: async () => [200, { ok: true }] },
    { method: 'GET', pattern: /^\/api\/status$/, auth: 'admin', handle: async () => [200, opts.counters()] },
    { method: 'GET', pattern: /^\/api\/pools$/, auth: 'admin', handle: async () => [200, service.listPools()] },
    {
      method: 'POST',
      pattern: /^\/api\/pools$/,
      auth: 'admin',
      handle: async ({ body }) => {
        const name = body['name'];
        if (typeof name !== 'string' || name.trim() === '') throw new ApiError(400, 'bad-request', 'field "name" must be a non-empty string');
        return [201, await service.createPool(name)];
      },
    },
    { method: 'GET', pattern: new RegExp(`^/api/pools/${id}$`), auth: 'admin', handle: async ({ params }) => [200, service.getPool(params[0] as string)] },
    // The pool's token as this backend issues it now (after an upgrade to protocol version 2, say); the private key does not change.
    { method: 'GET', pattern: new RegExp(`^/api/pools/${id}/token$`), auth: 'admin', handle: async ({ params }) => [200, { token: service.poolToken(params[0] as string) }] },
    {
      method: 'GET',
      pattern: new RegExp(`^/api/pools/${id}/stats$`),
      auth: 'pool',
      // ?waitFor=<revision>&timeoutSeconds=<n>: the pool's demand channel (docs/protocol.md, "Pool stats").
      handle: async ({ params, query, signal }) => {
        const waitFor = query.get('waitFor') ?? undefined;
        const raw = query.get('timeoutSeconds');
        const seconds = raw === null ? 25 : Number(raw);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_STATS_WAIT_SECONDS) {
          throw new ApiError(400, 'bad-request', `timeoutSeconds must be a whole number from 1 to ${MAX_STATS_WAIT_SECONDS}, got ${JSON.stringify(raw)}`);
        }
        return [200, await service.waitForPoolStats(params[0] as string, waitFor, seconds * 1000, signal)];
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/pools/${id}/workers$`),
      auth: 'pool',
      handle: async ({ params, body }) => [201, await service.register(params[0] as string, body['csr'], body['workerId'])],
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/api/pools/${id}/workers/${id}$`),
      auth: 'pool',
      handle: async ({ params }) => {
        await service.deregister(params[0] as string, params[1] as string);
        return [200, {}];
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/pools/${id}/workers/${id}/drain$`),
      auth: 'admin-or-pool',
      handle: async ({ params }) => [200, await service.drain(params[0] as string, params[1] as string)],
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/pools/${id}/workers/${id}/undrain$`),
      auth: 'admin-or-pool',
      handle: async ({ params }) => {
        await service.undrain(params[0] as string, params[1] as string);
        return [200, {}];
      },
    },
    { method: 'POST', pattern: /^\/api\/runs$/, auth: 'admin', handle: async ({ body }) => [201, await service.createRun({ ...body, poolId: body['poolId'] })] },
    { method: 'GET', pattern: /^\/api\/runs$/, auth: 'admin', handle: async ({ query }) => [200, await service.listRuns(query.get('poolId') ?? undefined)] },
    { method: 'GET', pattern: new RegExp(`^/api/runs/${id}$`), auth: 'admin', handle: async ({ params }) => [200, await service.getRun(params[0] as string)] },
    { method: 'POST', pattern: new RegExp(`^/api/runs/${id}/stop$`), auth: 'admin', handle: async ({ params }) => [202, await service.stopRun(params[0] as string)] },
    {
      method: 'GET',
      pattern: new RegExp(`^/api/runs/${id}/logs$`),
      auth: 'admin',
      handle: async ({ params, query, res }) => {
        const runId = params[0] as string;
        await service.getRun(runId);
        const follow = ['1', 'true'].includes(query.get('follow') ?? '');
        await streamLog(opts.files, runId, follow, () => service.logEnded(runId), res);
        return STREAMED;
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/api/pools/${id}/runs/${id}/script$`),
      auth: 'pool',
      handle: async ({ params }) => ({ status: 200, contentType: 'text/plain; charset=utf-8', bytes: await service.runScript(params[0] as string, params[1] as string) }),
    },
    { method: 'GET', pattern: new RegExp(`^/api/pools/${id}/runs/${id}/log$`), auth: 'pool', handle: async ({ params }) => [200, await service.logState(params[0] as string, params[1] as string)] },
    {
      method: 'PUT',
      pattern: new RegExp(`^/api/pools/${id}/runs/${id}/log/(\\d{1,15})$`),
      auth: 'pool',
      rawBody: true,
      handle: async ({ params, raw }) => [200, await service.appendLog(params[0] as string, params[1] as string, Number(params[2]), raw)],
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/pools/${id}/runs/${id}/log/complete$`),
      auth: 'pool',
      handle: async ({ params, body }) => [200, await service.completeLog(params[0] as string, params[1] as string, body['length'])],
    },
  ];

  const send = (res: ServerResponse, status: number, payload: unknown): void => {
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  };
  const fail = (res: ServerResponse, err: ApiError): void => {
    const body: ErrorBody = { error: err.message, code: err.code };
    send(res, err.status, body);
  };

  const readBody = (req: IncomingMessage, limit: number): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (c: Buffer): void => {
        size += c.length;
        if (size > limit) {
          // Stop reading; the 413 goes out with Connection: close and the socket ends after it.
          req.off('data', onData);
          req.pause();
          reject(new ApiError(413, 'bad-request', `request body larger than ${limit} bytes`));
          return;
        }
        chunks.push(c);
      };
      req.on('data', onData);
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'https://backend.invalid');
    const method = req.method ?? 'GET';
    let status = 500;
    try {
      const pathMatches = routes.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).filter((x) => x.m !== null);
      const hit = pathMatches.find((x) => x.r.method === method);
      if (!hit) {
        throw pathMatches.length > 0
          ? new ApiError(405, 'bad-request', `${method} is not allowed on ${url.pathname}`)
          : new ApiError(404, 'not-found', `no such endpoint: ${method} ${url.pathname}`);
      }
      const params = (hit.m as RegExpExecArray).slice(1).map((p) => decodeURIComponent(p));
      const { auth } = hit.r;
      const isAdmin = bearerMatches(req.headers.authorization, opts.adminToken);
      if (auth === 'admin' && !isAdmin) {
        throw new ApiError(401, 'unauthorized', req.headers.authorization ? 'the bearer token is not the admin token' : 'missing Authorization: Bearer <admin token> (see <data-dir>/admin-token)');
      }
      const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
      if (declared !== undefined && declared > MAX_BODY_BYTES) throw new ApiError(413, 'bad-request', `request body of ${declared} bytes is larger than ${MAX_BODY_BYTES}`);
      const signed = auth === 'pool' || (auth === 'admin-or-pool' && !isAdmin);
      // The signature covers the body's hash: with the hash in a header it is checked before a byte
      // of the body is read, so nobody without the pool key makes the backend buffer anything.
      const claimedHash = header(req, SIGNATURE_HEADERS.contentSha256);
      let raw: Buffer | undefined;
      if (signed && claimedHash === undefined) raw = await readBody(req, MAX_UNAUTHENTICATED_BODY_BYTES);
      if (signed) {
        const verdict = verifySignedRequest({
          method,
          path: url.pathname,
          headers: req.headers,
          body: raw ?? { sha256: claimedHash as string },
          expectedPoolId: params[0] as string,
          publicKeyFor: (poolId) => service.poolPublicKey(poolId),
          nonces,
        });
        if (!verdict.ok) throw new ApiError(verdict.status, 'unauthorized', verdict.reason);
        // Read-only calls change nothing else: their nonce must be on disk before the answer, or a
        // crash right after it would let the captured request be replayed. A run's script and log
        // calls are exempt, as are log appends (a relay makes many): replaying one changes nothing
        // (a read reveals only what its pool may read anyway; an append at an offset stores nothing
        // twice), so their nonces are kept in memory and written with the next state write.
        if (method === 'GET' && !IDEMPOTENT_READS.test(url.pathname)) await opts.store.persist();
      }
      if (raw === undefined) {
        raw = auth === 'none' ? Buffer.alloc(0) : await readBody(req, MAX_BODY_BYTES);
        if (signed && createHash('sha256').update(raw).digest('hex') !== claimedHash) {
          throw new ApiError(401, 'unauthorized', `the body does not match header ${SIGNATURE_HEADERS.contentSha256}: the request was altered`);
        }
      }
      let body: Record<string, unknown> = {};
      if (raw.length > 0 && hit.r.rawBody !== true) {
        let parsed: unknown;
        try {
          parsed = parseJson(raw.toString('utf8'));
        } catch (err) {
          if (err instanceof JsonSyntaxError) throw new ApiError(400, 'bad-request', `request body is not JSON: ${err.message}`);
          throw err;
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError(400, 'bad-request', 'request body must be a JSON object');
        body = parsed as Record<string, unknown>;
      }
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const answer = await hit.r.handle({ params, body, raw, query: url.searchParams, req, res, signal: gone.signal });
      if (answer === STREAMED) {
        status = 200;
      } else if (Array.isArray(answer)) {
        status = answer[0];
        send(res, answer[0], answer[1]);
      } else {
        status = answer.status;
        res.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': answer.bytes.length, 'cache-control': 'no-store' });
        res.end(answer.bytes);
      }
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
      if (!(err instanceof ApiError)) log.error('request failed', { method, path: url.pathname, error: (err as Error).message });
      status = apiErr.status;
      // An answer given before the body was read ends the connection: the unread body must not be
      // parsed as the next request, and whoever sent it gets no free keep-alive.
      if (!req.complete) res.setHeader('connection', 'close');
      if (!res.headersSent) fail(res, apiErr);
      else if (!res.writableEnded) res.destroy();
      if (!req.complete) res.once('finish', () => req.socket.destroySoon());
      if (apiErr.status === 401 || apiErr.status === 404) log.warn('request refused', { method, path: url.pathname, status, reason: apiErr.message });
    } finally {
      log.debug('request', { method, path: url.pathname, status, ms: Date.now() - started });
    }
  };
}
