/**
 * Helpers for the runtime's cluster tests: a TCP proxy in front of the API server
 * that can drop connections (as a network failure or API server restart would),
 * and waiting for conditions.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/** Forwards TCP to the API server; TLS passes through untouched. */
export class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private down = false;
  /** Connections accepted while up: each one is a new HTTP connection from a client. */
  connections = 0;

  private constructor(private readonly server: Server) {}

  static async start(target: { host: string; port: number }): Promise<CuttableProxy> {
    const server = createServer();
    const proxy = new CuttableProxy(server);
    server.on('connection', (client) => proxy.accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Drops every open connection, both directions. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Drops every connection and refuses new ones until {@link CuttableProxy.restore}. */
  takeDown(): void {
    this.down = true;
    this.cut();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.takeDown();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A copy of `kc` whose current cluster is reached through this proxy. */
  kubeConfig(kc: KubeConfig): KubeConfig {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const out = new KubeConfig();
    out.loadFromOptions({
      clusters: [{ ...cluster, server: `https://127.0.0.1:${this.port}` }],
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    return out;
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    if (this.down) {
      client.destroy();
      return;
    }
    this.connections++;
    const upstream = createConnection(target);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  }
}

/** The API server's address from a kubeconfig. */
export function apiServerAddress(kc: KubeConfig): { host: string; port: number } {
  const url = new URL(kc.getCurrentCluster()?.server ?? '');
  return { host: url.hostname, port: Number(url.port || 443) };
}

/** Waits until `cond` holds (polling); fails with `what` after a generous timeout. */
export async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
