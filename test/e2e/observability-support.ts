/**
 * Helpers for the metrics, health and shutdown end-to-end tests: free ports,
 * ServiceAccount tokens from the TokenRequest API, HTTP(S) requests that
 * accept the controller's self-signed certificate, and a TCP proxy to the
 * API server that can hold connections (to catch a controller before its
 * caches sync).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/cluster/binaries.js';
import type { KubeClient } from '../../src/runtime/k8s-client.js';
import { kubectlOk, testKubeConfig } from '../setup/cluster-access.js';

export const METRICS_READER_ROLE = 'kube-workerpool-controller-metrics-reader';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET over HTTP or HTTPS (any certificate), or the connection error. */
export function httpGet(url: string, token?: string): Promise<HttpAnswer> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'GET', headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, rejectUnauthorized: false, agent: false, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Status of a GET, or 0 when nothing answers. */
export async function statusOf(url: string, token?: string): Promise<number> {
  try {
    return (await httpGet(url, token)).status;
  } catch {
    return 0;
  }
}

/** A ServiceAccount in `namespace`, optionally bound (ClusterRoleBinding) to `clusterRole`. Returns the binding to clean up. */
export async function createServiceAccount(namespace: string, name: string, clusterRole?: string): Promise<string | undefined> {
  await kubectlOk(['create', 'serviceaccount', name, '-n', namespace]);
  if (clusterRole === undefined) return undefined;
  const binding = `${namespace}-${name}`.slice(0, 63);
  await kubectlOk(['create', 'clusterrolebinding', binding, `--clusterrole=${clusterRole}`, `--serviceaccount=${namespace}:${name}`]);
  return binding;
}

/** A real, short-lived token of the ServiceAccount from the TokenRequest API. */
export async function serviceAccountToken(client: KubeClient, namespace: string, name: string): Promise<string> {
  const res = await client.rest.request<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const token = res.status?.token;
  if (token === undefined || token === '') throw new Error(`no token for ${namespace}/${name}`);
  return token;
}

/**
 * A TCP proxy in front of the test API server. While held, it accepts
 * connections and keeps them waiting; `release()` connects them (and every
 * later one) through. A kubeconfig pointing at it is written to a temp file.
 */
export class HoldingProxy {
  private held: Socket[] = [];
  private released = false;
  private readonly open = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    private readonly upstream: { host: string; port: number },
    readonly kubeconfigPath: string,
  ) {}

  static async start(): Promise<HoldingProxy> {
    const kc = testKubeConfig();
    const config = JSON.parse(kc.exportConfig()) as { clusters: { name: string; cluster: { server: string } }[] };
    const current = kc.getCurrentCluster();
    if (current === null) throw new Error('the test kubeconfig has no current cluster');
    const target = new URL(current.server);
    const upstream = { host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 443) };
    let proxy: HoldingProxy | undefined;
    const server = createServer((socket) => proxy?.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    for (const c of config.clusters) {
      if (c.name === current.name) c.cluster.server = `https://127.0.0.1:${port}`;
    }
    const path = join(tmpdir(), `kwc-e2e-proxy-${randomBytes(4).toString('hex')}.kubeconfig`);
    writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
    proxy = new HoldingProxy(server, upstream, path);
    return proxy;
  }

  /** Connections accepted and waiting. */
  get waiting(): number {
    return this.held.length;
  }

  release(): void {
    this.released = true;
    for (const s of this.held.splice(0)) this.pipe(s);
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.open.add(socket);
    socket.on('close', () => this.open.delete(socket));
    socket.on('error', () => undefined);
    if (this.released) this.pipe(socket);
    else {
      socket.pause();
      this.held.push(socket);
    }
  }

  private pipe(socket: Socket): void {
    const up = connect(this.upstream.port, this.upstream.host);
    this.open.add(up);
    up.on('close', () => {
      this.open.delete(up);
      socket.destroy();
    });
    up.on('error', () => socket.destroy());
    socket.on('close', () => up.destroy());
    socket.pipe(up);
    up.pipe(socket);
    socket.resume();
  }
}

/** The controller as a child process with a kubeconfig of the test's choosing (the harness always uses the test cluster's). */
export function spawnController(args: readonly string[], kubeconfig: string): { lines: string[]; exited: Promise<number | null>; kill(): Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'controller', 'cli', 'main.ts'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, KUBECONFIG: kubeconfig },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    lines,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
