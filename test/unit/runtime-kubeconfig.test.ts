import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadDefaultConnection, type LoadedConnection } from '../../src/runtime/kubeconfig.js';

const root = mkdtempSync(join(tmpdir(), 'kwc-kubeconfig-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A fresh directory with the given files (objects are written as YAML). */
function dirWith(files: Record<string, unknown>): string {
  const dir = join(root, String(n++));
  for (const [name, content] of Object.entries(files)) {
    const file = join(dir, name);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : stringify(content));
  }
  return dir;
}

function kubeconfig(parts: { clusters?: unknown[]; users?: unknown[]; contexts?: unknown[]; current?: string }): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: parts.clusters ?? [],
    users: parts.users ?? [],
    contexts: parts.contexts ?? [],
    ...(parts.current === undefined ? {} : { 'current-context': parts.current }),
  };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function applied(loaded: LoadedConnection): Promise<https.RequestOptions & { server: string | undefined }> {
  const opts: https.RequestOptions = { headers: { Accept: 'application/json' } };
  await loaded.connection.applyToHTTPSOptions(opts);
  return { ...opts, server: loaded.connection.getCurrentCluster()?.server };
}

const noHome = (): string => dirWith({});

describe('kubeconfig files', () => {
  it('merges a KUBECONFIG list as kubectl does: first definition and first current-context win; paths relative to their file', async () => {
    const first = dirWith({
      config: kubeconfig({
        clusters: [{ name: 'prod', cluster: { server: 'https://first.example:6443', 'certificate-authority': 'certs/ca.pem' } }],
        contexts: [{ name: 'ops', context: { cluster: 'prod', user: 'admin' } }],
        current: 'ops',
      }),
      'certs/ca.pem': 'CA FROM FIRST DIR',
    });
    const second = dirWith({
      config: kubeconfig({
        clusters: [{ name: 'prod', cluster: { server: 'https://second.example:6443' } }],
        users: [{ name: 'admin', user: { 'client-certificate': 'admin.crt', 'client-key-data': b64('KEY DATA') } }],
        current: 'other',
      }),
      'admin.crt': 'CERT FROM SECOND DIR',
    });
    const loaded = await loadDefaultConnection({
      env: { KUBECONFIG: [join(first, 'config'), join(root, 'missing'), join(second, 'config')].join(delimiter) },
      homeDir: noHome(),
    });
    const opts = await applied(loaded);
    expect(opts.server).toBe('https://first.example:6443');
    expect(String(opts.ca)).toBe('CA FROM FIRST DIR');
    expect(String(opts.cert)).toBe('CERT FROM SECOND DIR');
    expect(String(opts.key)).toBe('KEY DATA');
    expect(opts.headers).toEqual({ Accept: 'application/json' });
    expect(loaded.source).toContain('context ops');
  });

  it('sends a bearer token, basic auth, insecure-skip-tls-verify and tls-server-name', async () => {
    const dir = dirWith({
      config: kubeconfig({
        clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1', 'insecure-skip-tls-verify': true, 'tls-server-name': 'api.internal' } }],
        users: [
          { name: 't', user: { token: 'sekret-token' } },
          { name: 'b', user: { username: 'ann', password: 'pw' } },
        ],
        contexts: [
          { name: 'token', context: { cluster: 'c', user: 't' } },
          { name: 'basic', context: { cluster: 'c', user: 'b' } },
        ],
        current: 'token',
      }),
    });
    const withToken = await applied(await loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() }));
    expect(withToken.headers).toMatchObject({ Authorization: 'Bearer sekret-token' });
    expect(withToken.rejectUnauthorized).toBe(false);
    expect(withToken.servername).toBe('api.internal');

    writeFileSync(join(dir, 'config'), readFileSync(join(dir, 'config'), 'utf8').replace('current-context: token', 'current-context: basic'));
    const withBasic = await applied(await loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() }));
    expect(withBasic.headers).toMatchObject({ Authorization: `Basic ${b64('ann:pw')}` });
  });

  it('reads tokenFile relative to the kubeconfig and again once the file changes', async () => {
    const dir = dirWith({
      config: kubeconfig({
        clusters: [{ name: 'c', cluster: { server: 'https://k' } }],
        users: [{ name: 'u', user: { tokenFile: 'token' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        current: 'x',
      }),
      token: 'first-token\n',
    });
    const loaded = await loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() });
    expect((await applied(loaded)).headers).toMatchObject({ Authorization: 'Bearer first-token' });
    writeFileSync(join(dir, 'token'), 'rotated-token\n');
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, 'token'), later, later);
    expect((await applied(loaded)).headers).toMatchObject({ Authorization: 'Bearer rotated-token' });
  });

  it('uses ~/.kube/config when KUBECONFIG is unset, before the service account', async () => {
    const home = dirWith({
      '.kube/config': kubeconfig({
        clusters: [{ name: 'c', cluster: { server: 'https://from-home' } }],
        contexts: [{ name: 'x', context: { cluster: 'c' } }],
        current: 'x',
      }),
    });
    const sa = dirWith({ token: 't', 'ca.crt': 'ca' });
    const loaded = await loadDefaultConnection({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      homeDir: home,
      serviceAccountDir: sa,
    });
    expect(loaded.connection.getCurrentCluster()?.server).toBe('https://from-home');
  });

  it('hands exec and auth-provider users and proxy-url clusters to client-node, with the chosen context', async () => {
    const dir = dirWith({
      config: kubeconfig({
        clusters: [{ name: 'eks', cluster: { server: 'https://eks.example' } }],
        users: [{ name: 'aws', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', args: ['eks', 'get-token'] } } }],
        contexts: [{ name: 'eks', context: { cluster: 'eks', user: 'aws' } }],
        current: 'eks',
      }),
    });
    const loaded = await loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() });
    expect(loaded.connection.constructor.name).toBe('KubeConfig');
    expect(loaded.connection.getCurrentCluster()?.server).toBe('https://eks.example');
  });

  it.each([
    [{ clusters: [], contexts: [], current: undefined }, 'no current-context'],
    [{ contexts: [], current: 'gone' }, 'current-context "gone" names no context'],
    [{ contexts: [{ name: 'x', context: { cluster: 'nowhere' } }], current: 'x' }, 'names cluster "nowhere", which is not defined'],
    [
      { clusters: [{ name: 'c', cluster: {} }], contexts: [{ name: 'x', context: { cluster: 'c' } }], current: 'x' },
      'clusters[c].cluster.server is missing',
    ],
    [
      {
        clusters: [{ name: 'c', cluster: { server: 'https://k', 'certificate-authority': 'no-such-ca.pem' } }],
        contexts: [{ name: 'x', context: { cluster: 'c' } }],
        current: 'x',
      },
      'clusters[c].cluster.certificate-authority',
    ],
    [
      {
        clusters: [{ name: 'c', cluster: { server: 'https://k' } }],
        users: [{ name: 'u', user: { token: 12345 } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        current: 'x',
      },
      'users[u].user.token must be a string, got number',
    ],
  ])('refuses a kubeconfig with a clear message (%#)', async (parts, message) => {
    const dir = dirWith({ config: kubeconfig(parts) });
    await expect(loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() })).rejects.toThrow(message);
  });

  it('names the file when KUBECONFIG points nowhere, and never echoes a token', async () => {
    await expect(loadDefaultConnection({ env: { KUBECONFIG: join(root, 'nope') }, homeDir: noHome() })).rejects.toThrow(
      `KUBECONFIG=${join(root, 'nope')}: no such file`,
    );
    const dir = dirWith({
      config: kubeconfig({ users: [{ name: 'u', user: { token: 'do-not-print-me' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], current: 'x' }),
    });
    const err: unknown = await loadDefaultConnection({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: noHome() }).catch((e: unknown) => e);
    expect(String(err)).toContain('names cluster "c"');
    expect(String(err)).not.toContain('do-not-print-me');
  });
});

describe('in-cluster', () => {
  it('uses the service account token and CA, re-reading a rotated token', async () => {
    const sa = dirWith({ token: 'sa-token-1', 'ca.crt': 'CLUSTER CA' });
    const loaded = await loadDefaultConnection({
      env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      homeDir: noHome(),
      serviceAccountDir: sa,
    });
    const opts = await applied(loaded);
    expect(opts.server).toBe('https://[fd00::1]:443');
    expect(String(opts.ca)).toBe('CLUSTER CA');
    expect(opts.headers).toMatchObject({ Authorization: 'Bearer sa-token-1' });
    expect(loaded.source).toBe('in-cluster service account (https://[fd00::1]:443)');
    writeFileSync(join(sa, 'token'), 'sa-token-2');
    const later = new Date(Date.now() + 5000);
    utimesSync(join(sa, 'token'), later, later);
    expect((await applied(loaded)).headers).toMatchObject({ Authorization: 'Bearer sa-token-2' });
  });

  it('says what to do when there is no cluster at all', async () => {
    await expect(loadDefaultConnection({ env: {}, homeDir: noHome(), serviceAccountDir: join(root, 'no-sa') })).rejects.toThrow(
      'no cluster to talk to: set KUBECONFIG, create ~/.kube/config, or run in a Pod with a service account token',
    );
  });
});

describe('the controller process', () => {
  it('does not load @kubernetes/client-node (its generated APIs cost ~68 MiB of RSS)', () => {
    const dir = dirWith({
      'hook.mjs': `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.KWC_RESOLVED_LOG, r.url + '\\\\n');
  return r;
}\`));
`,
    });
    const log = join(dir, 'resolved.log');
    writeFileSync(log, '');
    // --help returns after every static import of main.ts has been loaded.
    execFileSync(process.execPath, ['--import', 'tsx', '--import', join(dir, 'hook.mjs'), 'src/controller/cli/main.ts', '--help'], {
      env: { ...process.env, KWC_RESOLVED_LOG: log },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const resolved = readFileSync(log, 'utf8').split('\n');
    expect(resolved.some((u) => u.endsWith('/src/runtime/rest.ts'))).toBe(true);
    expect(resolved.some((u) => u.endsWith('/node_modules/mqtt/build/index.js') || u.includes('/node_modules/mqtt/'))).toBe(true);
    expect(resolved.filter((u) => u.includes('/@kubernetes/client-node/'))).toEqual([]);
  });
});
