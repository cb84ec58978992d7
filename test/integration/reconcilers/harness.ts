/**
 * The controller's reconcilers inside the test process, against the shared
 * real kube-apiserver, with the backend replaced at the protocol boundary
 * (fake-backend.ts). One namespace per test file; the manager watches only
 * that namespace, so it never touches other tests' objects.
 */
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { FIELD_MANAGER, FINALIZER_RUN_POD } from '../../../src/api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject, type WorkerPoolObject } from '../../../src/api/types.js';
import { Manager } from '../../../src/controller/manager.js';
import { encodePoolToken, type ProtocolVersion } from '../../../src/protocol/index.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { removeFinalizer } from '../../../src/runtime/finalizers.js';
import { Informer } from '../../../src/runtime/informer.js';
import { KubeClient, PODS, SECRETS, type Pod, type ResourceRef } from '../../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../../src/runtime/list-watch.js';
import { Logger } from '../../../src/runtime/log.js';
import { ensureInstalled, testKubeConfig } from '../../setup/cluster-access.js';
import { FakeBackend } from './fake-backend.js';
import type { FaultProxy } from './fault-proxy.js';

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
export function poolCredentials(poolId: string, protocolVersion: ProtocolVersion = 1): PoolCredentials {
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
  const token = encodePoolToken({ protocolVersion, apiUrl: 'https://backend.invalid:8443', brokerUrl: 'mqtts://backend.invalid:8883', poolId, caCert: caPem });
  const privateKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { poolId, token, privateKeyPem };
}

export interface InProcessOptions {
  readonly namespace: string;
  readonly backend?: FakeBackend;
  /** Route the controller's API calls through this proxy (conflicts, held writes, held watch events). */
  readonly proxy?: FaultProxy;
  readonly stuckPodGraceMs?: number;
}

/** One in-process controller (a Manager with its caches, queues and reconcilers). */
export class InProcessController {
  readonly backend: FakeBackend;
  readonly logs = new LogLines();
  /** Keys of the Worker reconciles that ended, in order, across restarts. */
  readonly workerReconciles: string[] = [];
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
    const kc = this.options.proxy?.kubeConfig() ?? testKubeConfig();
    this.manager = new Manager({
      client: KubeClient.fromKubeConfig(kc, { fieldManager: FIELD_MANAGER }),
      log: new Logger({ level: 'debug', sink: this.logs }),
      namespaces: [this.ns],
      identity: 'in-process-test',
      stuckPodGraceMs: this.options.stuckPodGraceMs ?? 300_000,
      connector: this.backend,
      onReconciled: (kind, report) => {
        if (kind === 'worker') this.workerReconciles.push(report.key);
      },
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
