/**
 * Where the API server is and how to authenticate to it, read without loading
 * `@kubernetes/client-node`.
 *
 * Why: client-node's `KubeConfig` module imports every generated API class,
 * which costs the controller about 68 MiB of RSS and 1.5-4 s of start-up for
 * two facts: a URL and credentials (docs/benchmarks.md, memory finding). The
 * cases an operator meets - the in-cluster service account, and kubeconfig
 * files with certificates, bearer tokens, token files or basic auth - are read
 * here. A kubeconfig whose current context needs more (an `exec` plugin, an
 * `auth-provider`, a `proxy-url`) is handed to client-node's `KubeConfig`,
 * imported only then, so those keep working exactly as before.
 *
 * Sources, in client-node's `loadFromDefault` order (unchanged behaviour):
 * `$KUBECONFIG` (a path list, merged as kubectl merges it: the first file to
 * name a cluster, user or context wins, and the first `current-context`), else
 * `~/.kube/config`, else the Pod's service account.
 *
 * @module
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * What the REST client needs of a cluster configuration: the two methods of
 * client-node's `KubeConfig` it uses, so that a `KubeConfig` fits as it is
 * (tests and tools build clients from one).
 */
export interface ClusterConnection {
  getCurrentCluster(): { readonly server: string; readonly proxyUrl?: string } | null;
  /** Adds TLS material and the Authorization header to the request options. */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

export interface LoadedConnection {
  readonly connection: ClusterConnection;
  /** For the start-up log line: which file and context, or the service account. Never a credential. */
  readonly source: string;
}

/** Where the in-cluster credentials live; a parameter for tests. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How long a token read from a file is trusted before it is read again (kubelet rotates projected tokens). */
const TOKEN_FILE_REFRESH_MS = 60_000;

export class KubeconfigError extends Error {
  override name = 'KubeconfigError';
}

export interface LoadOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly homeDir?: string;
  readonly serviceAccountDir?: string;
}

/** The cluster this process talks to, from the default sources (see the module comment). */
export async function loadDefaultConnection(options: LoadOptions = {}): Promise<LoadedConnection> {
  const env = options.env ?? process.env;
  const listed = (env.KUBECONFIG ?? '').split(path.delimiter).filter((p) => p !== '');
  if (listed.length > 0) {
    const present = listed.filter((p) => existsSync(p));
    if (present.length === 0) throw new KubeconfigError(`KUBECONFIG=${env.KUBECONFIG}: no such file`);
    return loadKubeconfigFiles(present);
  }
  const home = path.join(options.homeDir ?? os.homedir(), '.kube', 'config');
  if (existsSync(home)) return loadKubeconfigFiles([home]);
  const saDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(path.join(saDir, 'token'))) {
    return inClusterConnection(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, saDir);
  }
  throw new KubeconfigError(
    'no cluster to talk to: set KUBECONFIG, create ~/.kube/config, or run in a Pod with a service account token',
  );
}

/** The service account's token and CA, as a Pod sees them. */
export function inClusterConnection(host: string, port: string, saDir: string = SERVICE_ACCOUNT_DIR): LoadedConnection {
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const ca = readFileSync(path.join(saDir, 'ca.crt'));
  return {
    connection: new StaticConnection(server, { ca }, tokenFileAuth(path.join(saDir, 'token'))),
    source: `in-cluster service account (${server})`,
  };
}

/** One or more kubeconfig files, merged; the current context's cluster and user. */
export async function loadKubeconfigFiles(files: readonly string[]): Promise<LoadedConnection> {
  const merged = mergeKubeconfigs(files.map((f) => ({ file: f, config: readKubeconfig(f) })));
  const contextName = merged.currentContext;
  const where = files.join(path.delimiter);
  if (contextName === undefined) throw new KubeconfigError(`kubeconfig ${where}: no current-context`);
  const context = merged.contexts.get(contextName);
  if (!context) throw new KubeconfigError(`kubeconfig ${where}: current-context "${contextName}" names no context`);
  const clusterName = str(context.value, 'cluster', `contexts[${contextName}].context`);
  const cluster = clusterName === undefined ? undefined : merged.clusters.get(clusterName);
  if (!cluster) throw new KubeconfigError(`kubeconfig ${where}: context "${contextName}" names cluster "${clusterName ?? ''}", which is not defined`);
  const userName = str(context.value, 'user', `contexts[${contextName}].context`);
  const user = userName === undefined ? undefined : merged.users.get(userName);
  if (userName !== undefined && !user) throw new KubeconfigError(`kubeconfig ${where}: context "${contextName}" names user "${userName}", which is not defined`);

  const source = `kubeconfig ${where}, context ${contextName}`;
  if (needsClientNode(cluster.value, user?.value)) return { connection: await clientNodeConnection(files, contextName), source };

  const server = str(cluster.value, 'server', `clusters[${clusterName}].cluster`);
  if (server === undefined) throw new KubeconfigError(`kubeconfig ${cluster.file}: clusters[${clusterName}].cluster.server is missing`);
  const tls: Tls = {
    ca: material(cluster, 'certificate-authority', `clusters[${clusterName}].cluster`),
    rejectUnauthorized: cluster.value['insecure-skip-tls-verify'] === true ? false : undefined,
    servername: str(cluster.value, 'tls-server-name', `clusters[${clusterName}].cluster`),
  };
  let auth: AuthSource | undefined;
  if (user) {
    const at = `users[${userName}].user`;
    Object.assign(tls, { cert: material(user, 'client-certificate', at), key: material(user, 'client-key', at) });
    const token = str(user.value, 'token', at);
    const tokenFile = str(user.value, 'tokenFile', at);
    const username = str(user.value, 'username', at);
    if (token !== undefined) auth = async () => `Bearer ${token}`;
    else if (tokenFile !== undefined) auth = tokenFileAuth(path.resolve(path.dirname(user.file), tokenFile));
    else if (username !== undefined) {
      const basic = Buffer.from(`${username}:${str(user.value, 'password', at) ?? ''}`).toString('base64');
      auth = async () => `Basic ${basic}`;
    }
  }
  return { connection: new StaticConnection(server, tls, auth), source };
}

type Tls = Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
type AuthSource = () => Promise<string>;
type Dict = Readonly<Record<string, unknown>>;

class StaticConnection implements ClusterConnection {
  private readonly tls: Tls;

  constructor(
    private readonly server: string,
    tls: Tls,
    private readonly auth: AuthSource | undefined,
  ) {
    this.tls = Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) as Tls;
  }

  getCurrentCluster(): { readonly server: string } {
    return { server: this.server };
  }

  async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    Object.assign(opts, this.tls);
    if (this.auth) opts.headers = { ...opts.headers, Authorization: await this.auth() };
  }
}

/** A bearer token read from a file, re-read once a minute (and at once after the file changes). */
function tokenFileAuth(file: string): AuthSource {
  let cached: { token: string; readAt: number; mtimeMs: number } | undefined;
  return async () => {
    const now = Date.now();
    const { mtimeMs } = statSync(file);
    if (cached === undefined || now - cached.readAt > TOKEN_FILE_REFRESH_MS || mtimeMs !== cached.mtimeMs) {
      const token = readFileSync(file, 'utf8').trim();
      if (token === '') throw new KubeconfigError(`token file ${file} is empty`);
      cached = { token, readAt: now, mtimeMs };
    }
    return `Bearer ${cached.token}`;
  };
}

/** Credentials client-node can turn into headers and this module does not. */
function needsClientNode(cluster: Dict, user: Dict | undefined): boolean {
  return cluster['proxy-url'] !== undefined || user?.exec !== undefined || user?.['auth-provider'] !== undefined;
}

/**
 * An optional peer dependency of the package: most installs (in-cluster, plain
 * kubeconfigs) never need it, and it is most of the install's size.
 */
export const CLIENT_NODE_INSTALL = 'npm install @kubernetes/client-node@~1.4.0';

async function clientNodeConnection(files: readonly string[], context: string): Promise<ClusterConnection> {
  let clientNode: typeof import('@kubernetes/client-node');
  try {
    clientNode = await import('@kubernetes/client-node');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || !String(err).includes("'@kubernetes/client-node'")) throw err;
    throw new KubeconfigError(
      `kubeconfig ${files.join(path.delimiter)}, context ${context}: an exec or auth-provider user, or a proxy-url, ` +
        `needs the optional package @kubernetes/client-node, which is not installed; ${CLIENT_NODE_INSTALL}`,
    );
  }
  const { KubeConfig } = clientNode;
  const kc = new KubeConfig();
  // The same merge of the same files that found the context.
  const [first, ...rest] = files;
  if (first !== undefined) kc.loadFromFile(first);
  for (const f of rest) {
    const more = new KubeConfig();
    more.loadFromFile(f);
    kc.mergeConfig(more, true);
  }
  kc.setCurrentContext(context);
  return kc;
}

interface Named {
  readonly file: string;
  readonly value: Dict;
}

interface MergedKubeconfig {
  readonly clusters: Map<string, Named>;
  readonly users: Map<string, Named>;
  readonly contexts: Map<string, Named>;
  readonly currentContext: string | undefined;
}

function readKubeconfig(file: string): Dict {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KubeconfigError(`kubeconfig ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isDict(parsed)) throw new KubeconfigError(`kubeconfig ${file}: not a YAML mapping`);
  return parsed;
}

/** kubectl's merge: the first file to define a name wins, and the first current-context. */
export function mergeKubeconfigs(files: readonly { file: string; config: Dict }[]): MergedKubeconfig {
  const merged = { clusters: new Map<string, Named>(), users: new Map<string, Named>(), contexts: new Map<string, Named>() };
  let currentContext: string | undefined;
  for (const { file, config } of files) {
    for (const [list, inner, into] of [
      ['clusters', 'cluster', merged.clusters],
      ['users', 'user', merged.users],
      ['contexts', 'context', merged.contexts],
    ] as const) {
      const entries = config[list] ?? [];
      if (!Array.isArray(entries)) throw new KubeconfigError(`kubeconfig ${file}: ${list} is not a list`);
      entries.forEach((entry: unknown, i) => {
        const name = isDict(entry) ? entry.name : undefined;
        if (typeof name !== 'string' || name === '') throw new KubeconfigError(`kubeconfig ${file}: ${list}[${i}].name is missing`);
        const value = isDict(entry) && isDict(entry[inner]) ? entry[inner] : {};
        if (!into.has(name)) into.set(name, { file, value });
      });
    }
    const current = config['current-context'];
    if (currentContext === undefined && typeof current === 'string' && current !== '') currentContext = current;
  }
  return { ...merged, currentContext };
}

/** `<field>-data` (base64) or `<field>` (a path relative to the file that names it). */
function material(entry: Named, field: string, at: string): Buffer | undefined {
  const data = str(entry.value, `${field}-data`, at);
  if (data !== undefined) return Buffer.from(data, 'base64');
  const file = str(entry.value, field, at);
  if (file === undefined) return undefined;
  const resolved = path.resolve(path.dirname(entry.file), file);
  try {
    return readFileSync(resolved);
  } catch (err) {
    const why = err instanceof Error && 'code' in err ? String(err.code) : String(err);
    throw new KubeconfigError(`kubeconfig ${entry.file}: ${at}.${field} ${resolved}: ${why}`);
  }
}

function str(d: Dict, key: string, at: string): string | undefined {
  const v = d[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new KubeconfigError(`kubeconfig: ${at}.${key} must be a string, got ${typeof v}`);
  return v;
}

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
