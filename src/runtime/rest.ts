/**
 * A small JSON REST client, and the watch stream, over a cluster connection's
 * credentials (`kubeconfig.ts`).
 *
 * Why not the generated client-node API classes: they deserialize core types
 * into class instances with `Date` fields, while `Watch` hands us the JSON the
 * server sent (timestamps as strings). A cache fed by both would hold two shapes
 * of the same object. Everything here - informer lists, writes, the Lease - stays
 * in the wire format, for core and custom resources alike, and patches carry
 * the right Content-Type by construction. Failures are {@link KubeApiError}.
 *
 * Connections are kept alive and reused: the generated client builds a fresh
 * agent (and TLS handshake) per request, which a scale-up of hundreds of
 * workers would pay for hundreds of times. Watches get an agent of their own:
 * each holds its socket for minutes, and must never take a slot that requests
 * wait for.
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import { KubeApiError, type ApiStatus } from './errors.js';
import type { ClusterConnection } from './kubeconfig.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type QueryParams = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RestRequestOptions {
  readonly query?: QueryParams;
  readonly body?: unknown;
  /** Defaults to application/json when there is a body; patches pass their PatchStrategy. */
  readonly contentType?: string;
  readonly timeoutMs?: number;
  /** Aborts the request (and rejects with the signal's reason) when it fires. */
  readonly signal?: AbortSignal;
}

export interface KubeRestOptions {
  /** Per-request timeout, ms. Default 30s. */
  readonly timeoutMs?: number;
  readonly userAgent?: string;
}

/** Builds a URL query string, skipping undefined values. */
export function queryString(query: QueryParams | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}

type TlsMaterial = Pick<https.AgentOptions, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername'>;

function materialKey(m: TlsMaterial): string {
  const str = (v: unknown): string =>
    v === undefined ? '' : Buffer.isBuffer(v) ? v.toString('base64') : Array.isArray(v) ? v.map(str).join(',') : String(v);
  return [m.ca, m.cert, m.key, m.pfx, m.passphrase, m.rejectUnauthorized, m.servername].map(str).join('|');
}

/** Receives one watch event: its type and the object (a Status for ERROR). */
export type WatchEventHandler = (type: string, object: unknown) => void;

/** JSON over HTTP(S) to the cluster of a connection (a kubeconfig's current context, or in-cluster). */
export class KubeRest {
  private agent: { key: string; agent: https.Agent | http.Agent } | undefined;
  private watchAgent: { key: string; agent: https.Agent | http.Agent } | undefined;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(
    readonly connection: ClusterConnection,
    options: KubeRestOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'kube-workerpool-controller';
  }

  /** The API server's base URL. */
  get server(): string {
    const cluster = this.connection.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    return cluster.server.replace(/\/+$/, '');
  }

  /**
   * Sends one request and resolves to the decoded JSON body.
   * @throws KubeApiError for any non-2xx answer; socket errors as they come.
   */
  async request<T>(method: HttpMethod, path: string, options: RestRequestOptions = {}): Promise<T> {
    options.signal?.throwIfAborted();
    const url = new URL(`${this.server}${path}${queryString(options.query)}`);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const reqOpts: https.RequestOptions = {
      method,
      signal: options.signal,
      headers: {
        Accept: 'application/json',
        'User-Agent': this.userAgent,
        ...(body === undefined
          ? {}
          : { 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(body) }),
      },
    };
    // Fills in credentials (tokens are re-read, exec plugins re-run as needed).
    await this.connection.applyToHTTPSOptions(reqOpts);
    reqOpts.agent = this.reusableAgent(reqOpts, url, 'requests');
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;

    return new Promise<T>((resolve, reject) => {
      const req = sendFor(url)(url, reqOpts, (res) => {
        readBody(res, reject, (parsed) => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed as T);
          else reject(failure(method, url, res, parsed));
        });
      });
      req.setTimeout(timeoutMs, () => {
        req.destroy(Object.assign(new Error(`${method} ${url.pathname}: no answer in ${timeoutMs}ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Opens a watch (`?watch=true`) and hands each JSON line to `onEvent`.
   * `onDone` is called once: with nothing when the server ends the stream (its
   * timeout), with a {@link KubeApiError} when the server refuses the watch,
   * with the socket error otherwise. Resolves, once the request is sent, to a
   * function that closes the stream, which counts as a clean end.
   */
  async watch(path: string, query: QueryParams, onEvent: WatchEventHandler, onDone: (err?: unknown) => void): Promise<() => void> {
    const url = new URL(`${this.server}${path}${queryString({ ...query, watch: true })}`);
    const reqOpts: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json', 'User-Agent': this.userAgent } };
    await this.connection.applyToHTTPSOptions(reqOpts);
    reqOpts.agent = this.reusableAgent(reqOpts, url, 'watches');
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      onDone(err);
    };
    const req = sendFor(url)(url, reqOpts, (res) => {
      if (res.statusCode !== 200) {
        readBody(res, finish, (parsed) => finish(failure('WATCH', url, res, parsed)));
        return;
      }
      res.socket.setKeepAlive(true, 30_000);
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line.trim() === '') continue;
          let event: { type?: unknown; object?: unknown };
          try {
            event = JSON.parse(line) as { type?: unknown; object?: unknown };
          } catch (err) {
            // The stream is out of step with the server; end it so the informer resumes cleanly.
            req.destroy(new Error(`watch ${url.pathname}: a line that is not JSON (${err instanceof Error ? err.message : String(err)})`));
            return;
          }
          if (typeof event.type === 'string') onEvent(event.type, event.object);
        }
      });
      res.on('error', finish);
      res.on('aborted', () => finish(new Error(`watch ${url.pathname}: the server closed the stream mid-event`)));
      res.on('end', () => finish());
    });
    req.on('error', finish);
    req.end();
    return () => {
      // Finish first, so the socket error that destroy() raises is not reported as a failure.
      finish();
      req.destroy();
    };
  }

  /**
   * A GET whose body is handed over as a byte stream (a Pod's log), on the
   * watches' agent: such a stream may stay open as long as a watch. Resolves
   * with the response once the server answered 2xx; the caller reads it (with
   * backpressure: an unread stream holds the server back) and ends it by
   * aborting `signal` or destroying the response.
   * @throws KubeApiError for any non-2xx answer; socket errors as they come.
   */
  async stream(path: string, query: QueryParams, signal: AbortSignal): Promise<http.IncomingMessage> {
    signal.throwIfAborted();
    const url = new URL(`${this.server}${path}${queryString(query)}`);
    const reqOpts: https.RequestOptions = { method: 'GET', signal, headers: { Accept: '*/*', 'User-Agent': this.userAgent } };
    await this.connection.applyToHTTPSOptions(reqOpts);
    reqOpts.agent = this.reusableAgent(reqOpts, url, 'watches');
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = sendFor(url)(url, reqOpts, (res) => {
        const code = res.statusCode ?? 0;
        if (code >= 200 && code < 300) {
          res.socket.setKeepAlive(true, 30_000);
          resolve(res);
          return;
        }
        readBody(res, reject, (parsed) => reject(failure('GET', url, res, parsed)));
      });
      // Until the server answers; the stream itself may then be quiet for as long as it likes.
      req.setTimeout(this.timeoutMs, () => req.destroy(Object.assign(new Error(`GET ${url.pathname}: no answer in ${this.timeoutMs}ms`), { code: 'ETIMEDOUT' })));
      req.once('response', () => req.setTimeout(0));
      req.on('error', reject);
      req.end();
    });
  }

  /** Closes idle kept-alive connections (at shutdown, so the process can exit promptly). */
  close(): void {
    for (const a of [this.agent, this.watchAgent]) a?.agent.destroy();
    this.agent = undefined;
    this.watchAgent = undefined;
  }

  private reusableAgent(opts: https.RequestOptions, url: URL, use: 'requests' | 'watches'): https.Agent | http.Agent | undefined {
    // A proxy agent from the kubeconfig is used as given; caching it is not worth the special cases.
    if (this.connection.getCurrentCluster()?.proxyUrl) return opts.agent as https.Agent | undefined;
    const material: TlsMaterial = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      pfx: opts.pfx,
      passphrase: opts.passphrase,
      rejectUnauthorized: opts.rejectUnauthorized,
      servername: opts.servername,
    };
    const key = `${url.protocol}${materialKey(material)}`;
    const current = use === 'requests' ? this.agent : this.watchAgent;
    if (current?.key === key) return current.agent;
    // Rotated client certificates land here. The old agent is left to finish its
    // requests; its idle sockets close on the socket timeout.
    const common =
      use === 'requests'
        ? { keepAlive: true, maxSockets: 64, timeout: 120_000 }
        : // Watches are as many as informers x namespaces and idle between events; no cap, no idle timeout.
          { keepAlive: true };
    const agent = url.protocol === 'http:' ? new http.Agent(common) : new https.Agent({ ...material, ...common });
    if (use === 'requests') this.agent = { key, agent };
    else this.watchAgent = { key, agent };
    return agent;
  }
}

function sendFor(url: URL): typeof https.request {
  return url.protocol === 'http:' ? http.request : https.request;
}

/** The whole body, decoded as JSON when it is JSON (a proxy's HTML error page is kept as text), undefined when empty. */
function readBody(res: http.IncomingMessage, onError: (err: Error) => void, onBody: (parsed: unknown) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('error', onError);
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    if (text === '') {
      onBody(undefined);
      return;
    }
    try {
      onBody(JSON.parse(text));
    } catch {
      onBody(text);
    }
  });
}

function failure(method: string, url: URL, res: http.IncomingMessage, parsed: unknown): KubeApiError {
  const code = res.statusCode ?? 0;
  const status = typeof parsed === 'object' && parsed !== null ? (parsed as ApiStatus) : undefined;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = String(v);
  const why = status?.message ?? res.statusMessage ?? '';
  return new KubeApiError(code, `${method} ${url.pathname}: ${why} (HTTP ${code})`, parsed, headers);
}
