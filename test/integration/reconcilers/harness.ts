/**
 * The controller's reconcilers inside the test process, against the shared
 * real kube-apiserver, with the backend replaced at the protocol boundary
 * (fake-backend.ts). One namespace per test file; the manager watches only
 * that namespace, so it never touches other tests' objects.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import forge from 'node-forge';
import { FIELD_MANAGER, FINALIZER_RUN_POD } from '../../../src/api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject, type WorkerPoolObject } from '../../../src/api/types.js';
import { Manager } from '../../../src/controller/manager.js';
import { encodePoolToken } from '../../../src/protocol/index.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { removeFinalizer } from '../../../src/runtime/finalizers.js';
import { Informer } from '../../../src/runtime/informer.js';
import { KubeClient, PODS, SECRETS, type Pod, type ResourceRef } from '../../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../../src/runtime/list-watch.js';
import { Logger } from '../../../src/runtime/log.js';
import { ensureInstalled, testKubeConfig } from '../../setup/cluster-access.js';
import { FakeBackend } from './fake-backend.js';

export { eventually } from '../runtime-support.js';

/** The log lines of an in-process controller, kept for assertions (and printed when a test fails). */
export class LogLines {
  readonly lines: string[] = [];
  write(chunk: string): boolean {
    this.lines.push(...chunk.split('\n').filter((l) => l !== ''));
    return true;
  }
}

export interface PoolCredentials {
  readonly poolId: string;
  readonly token: string;
  readonly privateKeyPem: string;
}

let caPem: string | undefined;

/** A pool token and key of the protocol's real formats (the fake backend accepts any pool id). */
export function poolCredentials(poolId: string): PoolCredentials {
  if (caPem === undefined) {
    const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = '01';
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
    cert.setSubject([{ name: 'commonName', value: 'fake backend CA' }]);
    cert.setIssuer([{ name: 'commonName', value: 'fake backend CA' }]);
    cert.sign(keys.privateKey);
    caPem = forge.pki.certificateToPem(cert);
  }
  const token = encodePoolToken({ protocolVersion: 1, apiUrl: 'https://backend.invalid:8443', brokerUrl: 'mqtts://backend.invalid:8883', poolId, caCert: caPem });
  const privateKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { poolId, token, privateKeyPem };
}

/**
 * Sits between the controller and the API server and answers the first
 * attempt of each distinct write with a 409, as a concurrent writer would:
 * updates and deletes get Conflict before they reach the server; creates reach
 * it and then get AlreadyExists (a retried create whose first answer was lost).
 * Events are let through: they are not the reconcilers' state.
 */
export class ConflictProxy {
  /** The writes answered with a 409, as "METHOD path". */
  readonly injected: string[] = [];
  private readonly seen = new Set<string>();
  enabled = true;

  private constructor(
    private readonly server: Server,
    private readonly upstream: KubeConfig,
  ) {}

  static async start(upstream: KubeConfig): Promise<ConflictProxy> {
    let proxy: ConflictProxy | undefined;
    const server = createServer((req, res) => void proxy?.handle(req, res));
    proxy = new ConflictProxy(server, upstream);
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
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const isWrite = method !== 'GET' && !path.endsWith('/events');
    const name = method === 'POST' && body.length > 0 ? ((JSON.parse(body.toString('utf8')) as { metadata?: { name?: string } }).metadata?.name ?? '') : '';
    const key = `${method} ${path}${name === '' ? '' : `/${name}`}`;
    const inject = this.enabled && isWrite && !this.seen.has(key);
    if (inject) this.seen.add(key);
    if (inject && method !== 'POST') {
      this.injected.push(key);
      this.status(res, 409, 'Conflict', `injected conflict on ${key}: the object has been modified; please apply your changes to the latest version and try again`);
      return;
    }
    const upstream = await this.forward(req, body);
    if (inject && upstream.statusCode !== undefined && upstream.statusCode < 300) {
      upstream.resume();
      this.injected.push(key);
      this.status(res, 409, 'AlreadyExists', `injected: ${name} already exists`);
      return;
    }
    res.writeHead(upstream.statusCode ?? 502, upstream.headers);
    upstream.pipe(res);
    res.on('close', () => upstream.destroy());
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

export interface InProcessOptions {
  readonly namespace: string;
  readonly backend?: FakeBackend;
  /** Route the controller's API calls through a conflict-injecting proxy. */
  readonly conflicts?: ConflictProxy;
  readonly stuckPodGraceMs?: number;
}

/** One in-process controller (a Manager with its caches, queues and reconcilers). */
export class InProcessController {
  readonly backend: FakeBackend;
  readonly logs = new LogLines();
  /** Direct admin access for the test's own reads and writes. */
  readonly admin: KubeClient;
  private manager: Manager | undefined;

  constructor(private readonly options: InProcessOptions) {
    this.backend = options.backend ?? new FakeBackend();
    this.admin = KubeClient.fromKubeConfig(testKubeConfig(), { fieldManager: 'test' });
  }

  get ns(): string {
    return this.options.namespace;
  }

  get running(): Manager {
    if (this.manager === undefined) throw new Error('the controller is not running');
    return this.manager;
  }

  async start(): Promise<void> {
    await ensureInstalled();
    const kc = this.options.conflicts?.kubeConfig() ?? testKubeConfig();
    this.manager = new Manager({
      client: KubeClient.fromKubeConfig(kc, { fieldManager: FIELD_MANAGER }),
      log: new Logger({ level: 'debug', sink: this.logs }),
      namespaces: [this.ns],
      identity: 'in-process-test',
      stuckPodGraceMs: this.options.stuckPodGraceMs ?? 300_000,
      connector: this.backend,
    });
    await this.manager.start();
  }

  /** Stops the controller as a rolling update would (SIGTERM); state stays in the API. */
  async stop(): Promise<void> {
    await this.manager?.stop();
    this.manager = undefined;
  }

  /**
   * The pool's Secret and the pool. Run Pods get a node selector no node has,
   * so they stay Pending whatever nodes the test cluster has: their fate here
   * is decided by the test (deletion, stop), not by a kubelet.
   */
  async createPool(name: string, poolSize: number, credentials: PoolCredentials, spec: Record<string, unknown> = {}): Promise<void> {
    await this.admin.create(SECRETS, this.ns, {
      metadata: { name: `${name}-credentials` },
      stringData: { token: credentials.token, privateKey: Buffer.from(credentials.privateKeyPem).toString('base64') },
    });
    await this.admin.create(WORKERPOOL_REF, this.ns, {
      metadata: { name },
      spec: {
        poolSize,
        token: { secretKeyRef: { name: `${name}-credentials`, key: 'token' } },
        privateKey: { secretKeyRef: { name: `${name}-credentials`, key: 'privateKey' } },
        pod: { nodeSelector: { 'kwc.test/never-scheduled': 'true' } },
        ...spec,
      },
    });
  }

  async scale(name: string, poolSize: number): Promise<void> {
    await this.admin.mergePatch(WORKERPOOL_REF, this.ns, name, { spec: { poolSize } });
  }

  pool(name: string): Promise<WorkerPoolObject | undefined> {
    return ignoreNotFound(this.admin.get(WORKERPOOL_REF, this.ns, name));
  }

  async workers(poolName?: string): Promise<WorkerObject[]> {
    const list = await this.admin.list(WORKER_REF, this.ns);
    return list.items.filter((w) => poolName === undefined || w.spec.poolName === poolName);
  }

  async pods(): Promise<Pod[]> {
    return (await this.admin.list(PODS, this.ns)).items;
  }

  /** Deletes a Pod the way a user (or an eviction) does; the controller's finalizer holds it until reported. */
  async deletePod(name: string): Promise<void> {
    await ignoreNotFound(this.admin.delete(PODS, this.ns, name));
  }

  /** Makes a run Pod vanish behind the controller's back: finalizer removed by hand, then deleted. */
  async vanishPod(name: string): Promise<void> {
    const pod = await this.admin.get(PODS, this.ns, name);
    await removeFinalizer(this.admin, PODS, pod, FINALIZER_RUN_POD);
    await ignoreNotFound(this.admin.delete(PODS, this.ns, name, { gracePeriodSeconds: 0 }));
  }
}

/**
 * Every object of a kind that ever existed in the namespace while the test
 * ran, from a watch: for "never two" claims that a final list cannot prove.
 */
export class Seen<T extends { metadata?: { name?: string; uid?: string } }> {
  /** Names of objects ever added, with how many distinct objects (uids) had each. */
  readonly uidsByName = new Map<string, Set<string>>();
  private constructor(private readonly informer: Informer<T>) {}

  static async start<T extends { metadata?: { name?: string; uid?: string; namespace?: string } }>(client: KubeClient, ref: ResourceRef<T>, namespace: string): Promise<Seen<T>> {
    const informer = new Informer<T>(kubeListWatch(client, ref), { name: `seen-${ref.plural}`, namespaces: [namespace] });
    const seen = new Seen(informer);
    informer.addEventHandler({
      onAdd: (o) => seen.add(o),
      onUpdate: (_old, o) => seen.add(o),
    });
    informer.start();
    await informer.waitForSync();
    return seen;
  }

  private add(o: T): void {
    const name = o.metadata?.name ?? '';
    const uids = this.uidsByName.get(name) ?? new Set<string>();
    uids.add(o.metadata?.uid ?? '');
    this.uidsByName.set(name, uids);
  }

  get names(): string[] {
    return [...this.uidsByName.keys()].sort();
  }

  /** Distinct objects (uids) ever seen. */
  get count(): number {
    let n = 0;
    for (const uids of this.uidsByName.values()) n += uids.size;
    return n;
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }
}
