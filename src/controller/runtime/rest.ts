/**
 * A small JSON REST client over the KubeConfig's credentials.
 *
 * Why not the generated client-node API classes: they deserialize core types
 * into class instances with `Date` fields, while `Watch` hands us the JSON the
 * server sent (timestamps as strings). A cache fed by both would hold two shapes
 * of the same object. Everything here - informer lists, writes, the Lease - stays
 * in the wire format, for core and custom resources alike, and patches carry
 * the right Content-Type by construction. Failures are client-node's
 * `ApiException`, so `errors.ts` treats both clients the same.
 *
 * Connections are kept alive and reused: the generated client builds a fresh
 * agent (and TLS handshake) per request, which a scale-up of hundreds of
 * workers would pay for hundreds of times.
 *
 * @module
 */
import http from 'node:http';
import https from 'node:https';
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import type { ApiStatus } from './errors.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export type QueryParams = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RestRequestOptions {
  readonly query?: QueryParams;
  readonly body?: unknown;
  /** Defaults to application/json when there is a body; patches pass their PatchStrategy. */
  readonly contentType?: string;
  readonly timeoutMs?: number;
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

/** JSON over HTTP(S) to the cluster of the KubeConfig's current context. */
export class KubeRest {
  private agent: { key: string; agent: https.Agent | http.Agent } | undefined;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(
    readonly kubeConfig: KubeConfig,
    options: KubeRestOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'kube-workerpool-controller';
  }

  /** The API server's base URL. */
  get server(): string {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    return cluster.server.replace(/\/+$/, '');
  }

  /**
   * Sends one request and resolves to the decoded JSON body.
   * @throws ApiException for any non-2xx answer; socket errors as they come.
   */
  async request<T>(method: HttpMethod, path: string, options: RestRequestOptions = {}): Promise<T> {
    const url = new URL(`${this.server}${path}${queryString(options.query)}`);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const reqOpts: https.RequestOptions = {
      method,
      headers: {
        Accept: 'application/json',
        'User-Agent': this.userAgent,
        ...(body === undefined
          ? {}
          : { 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(body) }),
      },
    };
    // Fills in credentials (tokens are re-read, exec plugins re-run as needed) and a one-shot agent.
    await this.kubeConfig.applyToHTTPSOptions(reqOpts);
    reqOpts.agent = this.reusableAgent(reqOpts, url);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;

    return new Promise<T>((resolve, reject) => {
      const send = url.protocol === 'http:' ? http.request : https.request;
      const req = send(url, reqOpts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            // Not JSON (a proxy's HTML error page, say): keep the text for the error.
          }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            resolve(parsed as T);
            return;
          }
          const status = typeof parsed === 'object' && parsed !== null ? (parsed as ApiStatus) : undefined;
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = String(v);
          const why = status?.message ?? res.statusMessage ?? '';
          reject(new ApiException(code, `${method} ${url.pathname}: ${why} (HTTP ${code})`, parsed, headers));
        });
      });
      req.setTimeout(timeoutMs, () => {
        req.destroy(Object.assign(new Error(`${method} ${url.pathname}: no answer in ${timeoutMs}ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Closes idle kept-alive connections (at shutdown, so the process can exit promptly). */
  close(): void {
    this.agent?.agent.destroy();
    this.agent = undefined;
  }

  private reusableAgent(opts: https.RequestOptions, url: URL): https.Agent | http.Agent | undefined {
    // A proxy agent from the kubeconfig is used as given; caching it is not worth the special cases.
    if (this.kubeConfig.getCurrentCluster()?.proxyUrl) return opts.agent as https.Agent | undefined;
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
    if (this.agent?.key !== key) {
      // Rotated client certificates land here. The old agent is left to finish its
      // requests; its idle sockets close on the socket timeout.
      const common = { keepAlive: true, maxSockets: 64, timeout: 120_000 };
      const agent = url.protocol === 'http:' ? new http.Agent(common) : new https.Agent({ ...material, ...common });
      this.agent = { key, agent };
    }
    return this.agent.agent;
  }
}
