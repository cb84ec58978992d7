/**
 * The metrics endpoint, as controller-runtime serves it:
 *
 * - `--metrics-secure=true` (default): HTTPS, with `tls.crt`/`tls.key` from
 *   `--metrics-cert-dir` when both are there (reloaded when they change, so a
 *   cert-manager rotation needs no restart), else a self-signed certificate
 *   made at start. Every request is authenticated with a TokenReview of its
 *   bearer token and authorized with a SubjectAccessReview for `get` on the
 *   non-resource URL `/metrics`: no or invalid token -> 401, not allowed ->
 *   403. Answers are cached briefly, keyed by a hash of the token; the token
 *   itself is never stored, logged or echoed.
 * - `--metrics-secure=false`: plain HTTP, no authentication.
 *
 * Only `GET /metrics` is served.
 *
 * @module
 */
import { createHash, generateKeyPair as generateKeyPairCallback } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { CONTROLLER_NAME } from '../../api/constants.js';
import { METRICS_PATH } from '../permissions.js';
import type { BindAddress } from '../cli/flags.js';
import { resource, type KubeClient, type KubeObject } from '../../runtime/k8s-client.js';
import { silentLogger, type Logger } from '../../runtime/log.js';

const generateKeyPair = promisify(generateKeyPairCallback);

// ---- authentication and authorization ------------------------------------------

/** Who a token belongs to, as a TokenReview says. */
export interface UserInfo {
  readonly username: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
  readonly extra?: Readonly<Record<string, readonly string[]>>;
}

/** The two API calls the endpoint makes; the Kubernetes API in production, a fake in unit tests. */
export interface TokenAuthApi {
  /** The user the token authenticates as, or undefined when it does not authenticate. */
  authenticate(token: string): Promise<UserInfo | undefined>;
  /** Whether the user may `verb` the non-resource URL `path`. */
  authorize(user: UserInfo, verb: string, path: string): Promise<boolean>;
}

interface TokenReviewObject extends KubeObject {
  readonly spec?: { readonly token: string };
  readonly status?: { readonly authenticated?: boolean; readonly user?: UserInfo; readonly error?: string };
}

interface SubjectAccessReviewObject extends KubeObject {
  readonly spec?: {
    readonly user: string;
    readonly uid?: string;
    readonly groups?: readonly string[];
    readonly extra?: Readonly<Record<string, readonly string[]>>;
    readonly nonResourceAttributes: { readonly path: string; readonly verb: string };
  };
  readonly status?: { readonly allowed?: boolean; readonly denied?: boolean; readonly reason?: string };
}

export const TOKEN_REVIEWS = resource<TokenReviewObject>('authentication.k8s.io', 'v1', 'tokenreviews', 'TokenReview');
export const SUBJECT_ACCESS_REVIEWS = resource<SubjectAccessReviewObject>('authorization.k8s.io', 'v1', 'subjectaccessreviews', 'SubjectAccessReview');

/** TokenReview and SubjectAccessReview through the API server (the install grants both to the controller). */
export function kubeTokenAuthApi(client: KubeClient): TokenAuthApi {
  return {
    async authenticate(token) {
      const review = await client.create(TOKEN_REVIEWS, undefined, { spec: { token } });
      const user = review.status?.user;
      if (review.status?.authenticated !== true || user?.username === undefined) return undefined;
      return user;
    },
    async authorize(user, verb, path) {
      const review = await client.create(SUBJECT_ACCESS_REVIEWS, undefined, {
        spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb } },
      });
      return review.status?.allowed === true;
    },
  };
}

export type AuthDecision =
  | { readonly result: 'allowed'; readonly user: string }
  | { readonly result: 'unauthenticated' }
  | { readonly result: 'forbidden'; readonly user: string };

export interface CachingAuthorizerOptions {
  /** How long an answer for a token that authenticates is reused. Default 30 s. */
  readonly ttlMs?: number;
  /** Most such tokens remembered; the oldest answer goes first. Default 1024. */
  readonly maxEntries?: number;
  /** How long a token that does not authenticate is refused without asking again. Default 10 s. */
  readonly failedTtlMs?: number;
  /** Most failed tokens remembered, apart from the good ones so that a flood of bogus tokens evicts none of those. Default 4096. */
  readonly maxFailedEntries?: number;
  /** Reviews in flight at most; a request needing another is answered 429 at once. Default 4. */
  readonly maxConcurrentReviews?: number;
  readonly now?: () => number;
  readonly verb?: string;
  readonly path?: string;
}

/** The cache key of a token: its SHA-256, so the token itself is never kept. */
export function tokenKey(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Too many token reviews in flight: answered 429, the client retries. */
export class ReviewLimitError extends Error {
  constructor(readonly limit: number) {
    super(`${limit} token reviews are in flight; try again`);
    this.name = 'ReviewLimitError';
  }
}

/** Longer bearer tokens are refused without a review (service account tokens are about 1 KiB). */
export const MAX_TOKEN_LENGTH = 8192;

/**
 * Decides whether a bearer token may read the metrics, remembering answers
 * for `ttlMs` so that a Prometheus scraping every few seconds costs two API
 * calls per TTL, not per scrape. Concurrent checks of one token share the
 * calls. A failed API call is not remembered: the next request asks again.
 *
 * Bogus tokens cannot turn the endpoint into a TokenReview amplifier: a
 * token that does not authenticate is refused without asking again for
 * `failedTtlMs`, in a cache of its own (so a flood of distinct bogus tokens
 * evicts no good answer), and at most `maxConcurrentReviews` reviews are in
 * flight; beyond that a new token gets 429 at once.
 */
export class CachingAuthorizer {
  private readonly answers = new Map<string, { at: number; decision: Promise<AuthDecision> }>();
  private readonly failed = new Map<string, number>();
  private inFlight = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly failedTtlMs: number;
  private readonly maxFailedEntries: number;
  private readonly maxConcurrentReviews: number;
  private readonly now: () => number;
  private readonly verb: string;
  private readonly path: string;

  constructor(
    private readonly api: TokenAuthApi,
    options: CachingAuthorizerOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxEntries = Math.max(1, options.maxEntries ?? 1024);
    this.failedTtlMs = options.failedTtlMs ?? 10_000;
    this.maxFailedEntries = Math.max(1, options.maxFailedEntries ?? 4096);
    this.maxConcurrentReviews = Math.max(1, options.maxConcurrentReviews ?? 4);
    this.now = options.now ?? Date.now;
    this.verb = options.verb ?? 'get';
    this.path = options.path ?? METRICS_PATH;
  }

  /** @throws {@link ReviewLimitError} when the token needs a review and too many are in flight */
  check(token: string): Promise<AuthDecision> {
    if (token.length > MAX_TOKEN_LENGTH) return Promise.resolve({ result: 'unauthenticated' });
    const key = tokenKey(token);
    const now = this.now();
    const failedAt = this.failed.get(key);
    if (failedAt !== undefined && now - failedAt < this.failedTtlMs) return Promise.resolve({ result: 'unauthenticated' });
    this.failed.delete(key);
    const cached = this.answers.get(key);
    if (cached !== undefined && now - cached.at < this.ttlMs) return cached.decision;
    this.answers.delete(key);
    if (this.inFlight >= this.maxConcurrentReviews) return Promise.reject(new ReviewLimitError(this.maxConcurrentReviews));
    this.inFlight++;
    const decision = this.ask(token).finally(() => this.inFlight--);
    this.answers.set(key, { at: now, decision });
    decision.then(
      (d) => {
        if (d.result !== 'unauthenticated' || this.answers.get(key)?.decision !== decision) return;
        // Failed tokens live apart, briefly: they must not push good answers out.
        this.answers.delete(key);
        this.failed.set(key, this.now());
        this.evictFailed(this.now());
      },
      () => {
        if (this.answers.get(key)?.decision === decision) this.answers.delete(key);
      },
    );
    this.evict(now);
    return decision;
  }

  /** Entries held (for tests). */
  get size(): number {
    return this.answers.size;
  }

  /** Failed tokens remembered (for tests). */
  get failedSize(): number {
    return this.failed.size;
  }

  private async ask(token: string): Promise<AuthDecision> {
    const user = await this.api.authenticate(token);
    if (user === undefined) return { result: 'unauthenticated' };
    const allowed = await this.api.authorize(user, this.verb, this.path);
    return allowed ? { result: 'allowed', user: user.username } : { result: 'forbidden', user: user.username };
  }

  private evictFailed(now: number): void {
    for (const [k, at] of this.failed) {
      if (now - at >= this.failedTtlMs) this.failed.delete(k);
      else break; // insertion order: the rest are younger
    }
    while (this.failed.size > this.maxFailedEntries) this.failed.delete(this.failed.keys().next().value as string);
  }

  private evict(now: number): void {
    for (const [k, v] of this.answers) {
      if (now - v.at >= this.ttlMs) this.answers.delete(k);
    }
    // A Map iterates in insertion order: the first keys are the oldest.
    while (this.answers.size > this.maxEntries) {
      const oldest = this.answers.keys().next().value as string;
      this.answers.delete(oldest);
    }
  }
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1];
}

// ---- serving certificate --------------------------------------------------------

export const CERT_FILE = 'tls.crt';
export const KEY_FILE = 'tls.key';

export interface ServingCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** Where it came from: the directory, or "self-signed". */
  readonly source: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `tls.crt` and `tls.key` from `dir`; undefined when neither is there. One without the other is an error. */
export async function readCertificateDir(dir: string): Promise<ServingCertificate | undefined> {
  const certPath = join(dir, CERT_FILE);
  const keyPath = join(dir, KEY_FILE);
  const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (!hasCert && !hasKey) return undefined;
  if (!hasCert || !hasKey) throw new Error(`${dir} holds ${hasCert ? CERT_FILE : KEY_FILE} but not ${hasCert ? KEY_FILE : CERT_FILE}`);
  const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { certPem, keyPem, source: dir };
}

/**
 * A self-signed certificate for the metrics endpoint, valid a year, for
 * localhost, the host name and the loopback addresses. Prometheus scrapes it
 * with `insecure_skip_verify` (or mount a real one in the cert dir).
 */
export async function selfSignedCertificate(names: { dns?: readonly string[]; ips?: readonly string[] } = {}): Promise<ServingCertificate> {
  const { privateKey, publicKey } = await generateKeyPair('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  const serial = forge.util.bytesToHex(forge.random.getBytesSync(16));
  cert.serialNumber = `${(parseInt(serial[0] ?? '0', 16) & 0x7).toString(16)}${serial.slice(1)}`;
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600_000);
  const subject = [{ name: 'commonName', value: `${CONTROLLER_NAME}-metrics` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const dns = [...new Set(['localhost', hostname(), ...(names.dns ?? [])])].filter((n) => n !== '');
  const ips = [...new Set(['127.0.0.1', '::1', ...(names.ips ?? [])])];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [...dns.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKey, source: 'self-signed' };
}

// ---- the server ----------------------------------------------------------------------

/** What is served: the exposition text and its content type. */
export interface MetricsHandler {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsServerOptions {
  readonly address: BindAddress;
  readonly metrics: MetricsHandler;
  readonly log?: Logger;
  /** HTTPS with authentication and authorization; undefined serves plain HTTP without either. */
  readonly secure?: {
    readonly certDir: string;
    readonly authorizer: CachingAuthorizer;
    /** How often the cert dir is checked for a new certificate. Default 10 s. */
    readonly reloadIntervalMs?: number;
  };
}

export interface MetricsServer {
  readonly server: Server | HttpsServer;
  /** The port actually bound (the flag may say 0). */
  readonly port: number;
  readonly certificate?: ServingCertificate;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(`${body}\n`);
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const log = (options.log ?? silentLogger).with({ component: 'metrics' });
  const secure = options.secure;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== METRICS_PATH) return send(res, 404, 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
    if (secure !== undefined) {
      const token = bearerToken(req.headers.authorization);
      if (token === undefined) return send(res, 401, 'Unauthorized', { 'www-authenticate': 'Bearer' });
      let decision: AuthDecision;
      try {
        decision = await secure.authorizer.check(token);
      } catch (error) {
        if (error instanceof ReviewLimitError) return send(res, 429, 'Too Many Requests: authentication is busy', { 'retry-after': '1' });
        log.warn('could not review a metrics request with the API server', { error });
        return send(res, 500, 'Internal Server Error: authentication or authorization failed');
      }
      if (decision.result === 'unauthenticated') return send(res, 401, 'Unauthorized', { 'www-authenticate': 'Bearer' });
      if (decision.result === 'forbidden') {
        log.debug('metrics request forbidden', { user: decision.user });
        return send(res, 403, `Forbidden: ${decision.user} may not get ${METRICS_PATH}`);
      }
    }
    const body = await options.metrics.metrics();
    res.writeHead(200, { 'content-type': options.metrics.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      log.error('metrics request failed', { error });
      if (!res.headersSent) send(res, 500, 'Internal Server Error');
      else res.destroy();
    });
  };

  let server: Server | HttpsServer;
  let certificate: ServingCertificate | undefined;
  let reloadTimer: NodeJS.Timeout | undefined;
  if (secure === undefined) {
    server = createHttpServer(listener);
  } else {
    const mounted = await readCertificateDir(secure.certDir);
    certificate = mounted ?? (await selfSignedCertificate());
    const https = createHttpsServer({ cert: certificate.certPem, key: certificate.keyPem, minVersion: 'TLSv1.2' }, listener);
    server = https;
    log.info('serving metrics over HTTPS', { certificateSource: certificate.source });
    if (mounted !== undefined) {
      let current = mounted;
      reloadTimer = setInterval(() => {
        readCertificateDir(secure.certDir)
          .then((next) => {
            if (next === undefined || (next.certPem === current.certPem && next.keyPem === current.keyPem)) return;
            https.setSecureContext({ cert: next.certPem, key: next.keyPem, minVersion: 'TLSv1.2' });
            current = next;
            log.info('reloaded the metrics serving certificate', { certificateSource: next.source });
          })
          .catch((error: unknown) => log.warn('could not reload the metrics serving certificate; keeping the current one', { error }));
      }, secure.reloadIntervalMs ?? 10_000);
      reloadTimer.unref();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.address.port, options.address.host === '' ? undefined : options.address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.address.port;
  log.info('metrics server listening', { port, secure: secure !== undefined });
  return {
    server,
    port,
    certificate,
    close: () =>
      new Promise<void>((resolve) => {
        if (reloadTimer !== undefined) clearInterval(reloadTimer);
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
