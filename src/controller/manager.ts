/**
 * Wires the controller together: informers feed the work queues, the queues
 * run the reconcilers, the sessions deliver the backend's messages.
 * Started by the leader only; stopping it leaves every run Pod in place.
 */
import { availableParallelism } from 'node:os';
import { ANNOTATION_DRAINING, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_WORKER, MANAGED_BY_VALUE } from '../api/constants.js';
import type { ToWorkerMessage } from '../protocol/index.js';
import type { WorkerObject, WorkerPoolObject } from '../api/types.js';
import { BackendAccess } from './backend/access.js';
import { KeyFactory } from './worker/key-factory.js';
import { INDEX_WORKERS_BY_POOL, WORKER_REF, WORKERPOOL_REF, type Caches, type ControllerContext, type ControllerObserver, type ControllerOptions } from './context.js';
import { EventRecorder } from '../runtime/events.js';
import { Expectations } from './pool/expectations.js';
import { classifyRunPod } from './runs/pod-status.js';
import { reconcilePool } from './pool/controller.js';
import { Informer, objectKey } from '../runtime/informer.js';
import { PODS, SECRETS, type KubeClient, type Pod, type Secret } from '../runtime/k8s-client.js';
import { kubeListWatch } from '../runtime/list-watch.js';
import type { Logger } from '../runtime/log.js';
import { WorkQueue, type ReconcileReport } from '../runtime/queue.js';
import { handleWorkerMessage } from './runs/controller.js';
import { SessionManager } from './backend/sessions.js';
import { reconcileWorker } from './worker/controller.js';

export interface ManagerOptions extends ControllerOptions {
  readonly client: KubeClient;
  readonly log: Logger;
  /** Namespaces to watch; empty: all. */
  readonly namespaces: readonly string[];
  /** Identity in events (`reportingInstance`). */
  readonly identity: string;
  /** Reconciles of different Workers at once; key generation runs on the thread pool meanwhile. */
  readonly workerConcurrency?: number;
  readonly onReconciled?: (kind: 'workerpool' | 'worker', report: ReconcileReport) => void;
  readonly onMessageRejected?: (reason: string) => void;
  /** Metrics hooks for runs and worker creation. */
  readonly observer?: ControllerObserver;
}

/** Worker-triggered pool reconciles wait this long so that a burst of worker changes makes one status write. */
const POOL_BATCH_MS = 200;

/**
 * A run Pod's progress (created, bound, started) reaches its Worker's reconcile
 * up to this much later, so that in a burst of run starts the Pod creates are
 * not slowed by follow-up writes (Worker status) competing with them in the API
 * server, and a Pod's quick run of updates makes one reconcile. The schedule
 * path has already told the backend `busy` and `accepted` by then. Ends and
 * deletions are handled at once: they free the worker.
 */
const RUN_PROGRESS_BATCH_MS = 1000;

export class Manager {
  readonly ctx: ControllerContext;
  private synced = false;

  constructor(private readonly opts: ManagerOptions) {
    const { client, log, namespaces } = opts;
    const informerOptions = (name: string) => ({ name, namespaces, logger: log });
    const caches: Caches = {
      pools: new Informer<WorkerPoolObject>(kubeListWatch(client, WORKERPOOL_REF), informerOptions('workerpools')),
      workers: new Informer<WorkerObject>(kubeListWatch(client, WORKER_REF), informerOptions('workers')),
      pods: new Informer<Pod>(kubeListWatch(client, PODS, { labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}` }), informerOptions('run-pods')),
      secrets: new Informer<Secret>(kubeListWatch(client, SECRETS), informerOptions('secrets')),
    };
    caches.workers.addIndex(INDEX_WORKERS_BY_POOL, (w) => [`${w.metadata.namespace}/${w.spec.poolName}`]);
    caches.pods.indexByLabel(LABEL_WORKER);

    const expectations = new Expectations();
    let ctx: ControllerContext;
    const queues = {
      pools: new WorkQueue((key) => reconcilePool(ctx, key), {
        name: 'workerpool',
        concurrency: 2,
        logger: log,
        onReconciled: (r) => opts.onReconciled?.('workerpool', r),
      }),
      workers: new WorkQueue((key) => reconcileWorker(ctx, key), {
        name: 'worker',
        // Far more slots than key-generation threads: reconciles waiting for a key must not hold up
        // the quick ones (a session that just connected, a run that just ended).
        concurrency: opts.workerConcurrency ?? 64,
        logger: log,
        onReconciled: (r) => opts.onReconciled?.('worker', r),
      }),
    };
    const sessions = new SessionManager(
      {
        onMessage: (workerKey: string, message: ToWorkerMessage) => handleWorkerMessage(ctx, workerKey, message),
        onConnectionChange: (workerKey: string) => queues.workers.add(workerKey),
        onRejected: (workerKey: string, reason: string) => {
          log.warn('rejected a malformed message', { worker: workerKey, reason });
          opts.onMessageRejected?.(reason);
        },
      },
      log,
    );
    ctx = {
      client,
      caches,
      queues,
      backends: new BackendAccess(caches.secrets, client),
      sessions,
      events: new EventRecorder(client, log, CONTROLLER_NAME, opts.identity),
      expectations,
      pendingRuns: new Map(),
      // Fewer keys in flight than libuv's 4 threads, so DNS and file work always find one free.
      keys: new KeyFactory((workerKey) => queues.workers.add(workerKey), Math.max(1, Math.min(availableParallelism(), 3))),
      progressReports: new Map(),
      log,
      options: { stuckPodGraceMs: opts.stuckPodGraceMs },
      observer: opts.observer,
    };
    this.ctx = ctx;
  }

  private wire(): void {
    const { caches, queues, expectations } = this.ctx;
    const poolKeyOfWorker = (w: WorkerObject): string => `${w.metadata.namespace}/${w.spec.poolName}`;

    caches.pools.addEventHandler({
      onAdd: (p) => queues.pools.add(objectKey(p)),
      onUpdate: (old, p) => {
        // Our own status writes give nothing to act on; spec, finalizer and deletion changes do.
        const m = old.metadata;
        const n = p.metadata;
        if (m.generation !== n.generation || m.deletionTimestamp !== n.deletionTimestamp || String(m.finalizers) !== String(n.finalizers)) {
          queues.pools.add(objectKey(p));
        }
        // New credentials or a changed pod template concern every worker of the pool.
        if (JSON.stringify(old.spec) !== JSON.stringify(p.spec)) {
          for (const w of caches.workers.byIndex(INDEX_WORKERS_BY_POOL, objectKey(p))) queues.workers.add(objectKey(w));
        }
      },
      onDelete: (p) => queues.pools.add(objectKey(p)),
    });

    const onWorker = (w: WorkerObject): void => {
      expectations.observe(poolKeyOfWorker(w), w.metadata.name ?? '', w.metadata.annotations?.[ANNOTATION_DRAINING] === 'true');
      queues.workers.add(objectKey(w));
      queues.pools.addAfter(poolKeyOfWorker(w), POOL_BATCH_MS);
    };
    caches.workers.addEventHandler({
      onAdd: onWorker,
      onUpdate: (_old, w) => onWorker(w),
      onDelete: (w) => {
        queues.workers.add(objectKey(w));
        queues.pools.addAfter(poolKeyOfWorker(w), POOL_BATCH_MS);
      },
    });

    const onPod = (pod: Pod, deleted = false): void => {
      const workerName = pod.metadata?.ownerReferences?.find((o) => o.kind === 'Worker')?.name;
      if (workerName === undefined) return;
      const key = `${pod.metadata?.namespace}/${workerName}`;
      const phase = classifyRunPod(pod, new Date()).phase;
      if (deleted || pod.metadata?.deletionTimestamp !== undefined || phase === 'succeeded' || phase === 'failed') queues.workers.add(key);
      else queues.workers.addAfter(key, RUN_PROGRESS_BATCH_MS);
    };
    caches.pods.addEventHandler({ onAdd: (p) => onPod(p), onUpdate: (_o, p) => onPod(p), onDelete: (p) => onPod(p, true) });

    const onSecret = (secret: Secret): void => {
      const namespace = secret.metadata?.namespace;
      const name = secret.metadata?.name;
      for (const raw of caches.pools.list((p) => p.metadata.namespace === namespace)) {
        const spec = raw.spec as { token?: { secretKeyRef?: { name?: string } }; privateKey?: { secretKeyRef?: { name?: string } } } | undefined;
        if (spec?.token?.secretKeyRef?.name === name || spec?.privateKey?.secretKeyRef?.name === name) {
          const poolKey = objectKey(raw);
          queues.pools.add(poolKey);
          for (const w of caches.workers.byIndex(INDEX_WORKERS_BY_POOL, poolKey)) queues.workers.add(objectKey(w));
        }
      }
    };
    caches.secrets.addEventHandler({ onAdd: onSecret, onUpdate: (_o, s) => onSecret(s), onDelete: onSecret });
  }

  /** Lists and watches everything; resolves once every cache is synced. */
  async start(signal?: AbortSignal): Promise<void> {
    const { caches } = this.ctx;
    const all = [caches.pools, caches.workers, caches.pods, caches.secrets];
    for (const informer of all) informer.start();
    await Promise.all(all.map((i) => i.waitForSync(signal)));
    // Handlers only now: a reconcile on a half-filled cache would, say, call a Secret missing that is not.
    // addEventHandler replays every cached object, so nothing listed is missed.
    this.wire();
    this.synced = true;
    this.opts.log.info('caches synced', { pools: caches.pools.size, workers: caches.workers.size, runPods: caches.pods.size });
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /**
   * Stops taking work and closes every session cleanly: the broker keeps the
   * sessions and queues what the backend sends meanwhile, and run Pods keep
   * running for the next leader to adopt.
   */
  async stop(): Promise<void> {
    const { caches, queues, sessions, backends } = this.ctx;
    await Promise.all([queues.pools.shutdown(), queues.workers.shutdown()]);
    await sessions.closeAll();
    await Promise.all([caches.pools.stop(), caches.workers.stop(), caches.pods.stop(), caches.secrets.stop()]);
    backends.closeAll();
  }
}
