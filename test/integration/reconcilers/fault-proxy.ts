/**
 * Sits between an in-process controller and the real API server, and makes
 * the moments tests need happen on demand:
 *
 * - conflicts: the first attempt of each distinct write is answered with a
 *   409, as a concurrent writer would: updates and deletes get Conflict before
 *   they reach the server; creates reach it and then get AlreadyExists (a
 *   retried create whose first answer was lost). Events pass untouched.
 * - held writes: a matching write waits until the test releases it;
 * - held watch events: the controller's informers see nothing new until
 *   released, as when its cache lags behind the server.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface Hold {
  /** Resolves when a matching request arrives (and is being held). */
  readonly reached: Promise<void>;
  /** Lets the request through to the API server. */
  release(): void;
  /** Drops the request without it ever reaching the API server (as if the controller died first). */
  drop(): void;
}

interface WriteHold {
  readonly match: RegExp;
  readonly reached: () => void;
  readonly released: Promise<'release' | 'drop'>;
}

export class FaultProxy {
  /** The writes answered with a 409, as "METHOD path". */
  readonly injected: string[] = [];
  /** Every write that reached the API server, with the status it answered. */
  readonly writes: { readonly key: string; readonly status: number }[] = [];
  private readonly seen = new Set<string>();
  private readonly writeHolds: WriteHold[] = [];
  private watchHeld: { buffered: { res: ServerResponse; chunk: Buffer }[] } | undefined;

  private constructor(
    private readonly server: Server,
    private readonly upstream: KubeConfig,
    /** Inject conflicts (see above). */
    public conflicts: boolean,
  ) {}

  static async start(upstream: KubeConfig, options: { conflicts?: boolean } = {}): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => void proxy?.handle(req, res));
    proxy = new FaultProxy(server, upstream, options.conflicts ?? false);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** A kubeconfig that reaches the API server through this proxy (which adds the credentials). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const port = (this.server.address() as AddressInfo).port;
    kc.loadFromOptions({
      // Plain HTTP on loopback: client-node accepts it only with skipTLSVerify.
      clusters: [{ name: 'proxy', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'proxy' }],
      contexts: [{ name: 'proxy', cluster: 'proxy', user: 'proxy' }],
      currentContext: 'proxy',
    });
    return kc;
  }

  /** Holds the next write whose "METHOD path" matches until released. */
  holdWrite(match: RegExp): Hold {
    let reached: () => void = () => undefined;
    let settle: (how: 'release' | 'drop') => void = () => undefined;
    const hold: WriteHold = { match, reached: () => reached(), released: new Promise((r) => (settle = r)) };
    const reachedPromise = new Promise<void>((r) => (reached = r));
    this.writeHolds.push(hold);
    return { reached: reachedPromise, release: () => settle('release'), drop: () => settle('drop') };
  }

  /** Holds every watch event from now on until released. */
  holdWatchEvents(): { release(): void } {
    const held = { buffered: [] as { res: ServerResponse; chunk: Buffer }[] };
    this.watchHeld = held;
    return {
      release: () => {
        if (this.watchHeld === held) this.watchHeld = undefined;
        for (const { res, chunk } of held.buffered) if (!res.destroyed) res.write(chunk);
      },
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const isWrite = method !== 'GET' && !path.endsWith('/events');
    const name = method === 'POST' && body.length > 0 ? ((JSON.parse(body.toString('utf8')) as { metadata?: { name?: string } }).metadata?.name ?? '') : '';
    const key = `${method} ${path}${name === '' ? '' : `/${name}`}`;

    if (isWrite) {
      const index = this.writeHolds.findIndex((h) => h.match.test(key));
      if (index >= 0) {
        const [hold] = this.writeHolds.splice(index, 1);
        hold?.reached();
        if ((await hold?.released) === 'drop') {
          res.destroy();
          return;
        }
      }
    }
    const inject = this.conflicts && isWrite && !this.seen.has(key);
    if (inject) this.seen.add(key);
    if (inject && method !== 'POST') {
      this.injected.push(key);
      this.status(res, 409, 'Conflict', `injected conflict on ${key}: the object has been modified; please apply your changes to the latest version and try again`);
      return;
    }
    const upstream = await this.forward(req, body);
    if (isWrite) this.writes.push({ key, status: upstream.statusCode ?? 0 });
    if (inject && upstream.statusCode !== undefined && upstream.statusCode < 300) {
      upstream.resume();
      this.injected.push(key);
      this.status(res, 409, 'AlreadyExists', `injected: ${name} already exists`);
      return;
    }
    res.writeHead(upstream.statusCode ?? 502, upstream.headers);
    res.on('close', () => upstream.destroy());
    if (url.searchParams.get('watch') !== 'true') {
      upstream.pipe(res);
      return;
    }
    upstream.on('data', (chunk: Buffer) => {
      if (this.watchHeld !== undefined) this.watchHeld.buffered.push({ res, chunk });
      else res.write(chunk);
    });
    upstream.on('end', () => res.end());
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
  }

  private async forward(req: IncomingMessage, body: Buffer): Promise<IncomingMessage> {
    const cluster = this.upstream.getCurrentCluster();
    if (cluster === null) throw new Error('no current cluster');
    const url = new URL(req.url ?? '/', cluster.server);
    const headers = { ...req.headers, host: url.host };
    delete headers.connection;
    const options: RequestOptions = { method: req.method, headers };
    await this.upstream.applyToHTTPSOptions(options);
    return new Promise((resolve, reject) => {
      const up = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, resolve);
      up.on('error', reject);
      up.end(body);
    });
  }
}
