/**
 * Wires the controller together: informers feed the work queues, the queues
 * run the reconcilers, the sessions deliver the backend's messages. Each
 * controller (pool, worker, runs) sets up its own watches.
 * Started by the leader only; stopping it leaves every run Pod in place.
 */
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_WORKER, MANAGED_BY_VALUE } from '../api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject, type WorkerPoolObject } from '../api/types.js';
import type { ToWorkerMessage } from '../protocol/index.js';
import { EventRecorder } from '../runtime/events.js';
import { Informer } from '../runtime/informer.js';
import { POD_DISRUPTION_BUDGETS, PODS, type KubeClient, type Pod, type PodDisruptionBudget } from '../runtime/k8s-client.js';
import { kubeListWatch } from '../runtime/list-watch.js';
import type { Logger } from '../runtime/log.js';
import { WorkQueue, type ReconcileReport } from '../runtime/queue.js';
import { BackendAccess } from './backend/access.js';
import type { BackendConnector } from './backend/connector.js';
import { DemandWatchers } from './backend/demand.js';
import { SessionManager } from './backend/sessions.js';
import { INDEX_WORKERS_BY_POOL, type Caches, type ControllerContext, type ControllerObserver, type ControllerOptions } from './context.js';
import { poolKeyOf } from './keys.js';
import { reconcilePool, watchPools } from './pool/controller.js';
import { Expectations } from './pool/expectations.js';
import { watchRunPods } from './runs/controller.js';
import { LogRelays } from './runs/log-relay.js';
import { poolBackend } from './runs/pool-backend.js';
import { RetryLaterError } from '../runtime/queue.js';
import { handleWorkerMessage } from './runs/messages.js';
import { RunTracker } from './runs/tracker.js';
import { referencedSecretKeys, SecretCache } from './secret-cache.js';
import { reconcileWorker, watchWorkers } from './worker/controller.js';
import { KeyFactory } from './worker/key-factory.js';
import { Registrations } from './worker/registrations.js';

/**
 * Worker reconciles at once by default: far more slots than key-generation threads, so that
 * reconciles waiting for a key do not hold up the quick ones (a session that just connected,
 * a run that just ended).
 */
export const DEFAULT_WORKER_CONCURRENCY = 64;

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
  /** How the backend is reached; the real protocol unless a test brings its own backend. */
  readonly connector?: BackendConnector;
}

/**
 * At a start, run log relays wait until the workers' sessions are back (no
 * Worker reconcile queued or running, no session still opening), at most
 * this long. Relays starting beside the sessions took a share of the
 * controller's one thread while it re-adopted them: recovery with 1000 busy
 * workers 7.51 -> 7.11 s with the gate, 7.72 -> 6.59 s with mosquitto as the
 * broker (`npm run bench -- --workers 1000 --phases scale,recovery`).
 */
export const RELAYS_WAIT_FOR_SESSIONS_MAX_MS = 10_000;

export class Manager {
  readonly ctx: ControllerContext;
  private readonly stopping = new AbortController();
  private synced = false;
  private sessionsBack: () => void = () => undefined;

  constructor(private readonly opts: ManagerOptions) {
    const { client, log, namespaces } = opts;
    const informerOptions = (name: string) => ({ name, namespaces, logger: log });
    const caches: Caches = {
      pools: new Informer<WorkerPoolObject>(kubeListWatch(client, WORKERPOOL_REF), informerOptions('workerpools')),
      workers: new Informer<WorkerObject>(kubeListWatch(client, WORKER_REF), informerOptions('workers')),
      pods: new Informer<Pod>(kubeListWatch(client, PODS, { labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}` }), informerOptions('run-pods')),
      secrets: new SecretCache(client, namespaces, log),
      budgets: new Informer<PodDisruptionBudget>(
        kubeListWatch(client, POD_DISRUPTION_BUDGETS, { labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}` }),
        informerOptions('pod-disruption-budgets'),
      ),
    };
    caches.workers.addIndex(INDEX_WORKERS_BY_POOL, (w) => [poolKeyOf(w)]);
    caches.pods.indexByLabel(LABEL_WORKER);

    let ctx: ControllerContext;
    const queues = {
      pools: new WorkQueue((key, rc) => reconcilePool(ctx, key, rc), {
        name: 'workerpool',
        concurrency: 2,
        logger: log,
        onReconciled: (r) => opts.onReconciled?.('workerpool', r),
      }),
      workers: new WorkQueue((key, rc) => reconcileWorker(ctx, key, rc), {
        name: 'worker',
        concurrency: opts.workerConcurrency ?? DEFAULT_WORKER_CONCURRENCY,
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
      opts.connector,
    );
    ctx = {
      client: client.withSignal(this.stopping.signal),
      caches,
      queues,
      backends: new BackendAccess(caches.secrets, client, opts.connector),
      sessions,
      events: new EventRecorder(client, log, CONTROLLER_NAME, opts.identity),
      expectations: new Expectations(),
      runs: new RunTracker(),
      logs: new LogRelays({
        begin: new Promise<void>((resolve) => (this.sessionsBack = resolve)),
        client: client.withSignal(this.stopping.signal),
        backendFor: async (target) => {
          const worker = caches.workers.getByKey(target.workerKey);
          const pool = worker === undefined ? undefined : caches.pools.getByKey(poolKeyOf(worker));
          if (pool === undefined) throw new RetryLaterError(`the pool of worker ${target.workerKey} is not in the cache`, 1_000);
          return poolBackend(ctx, pool);
        },
        log,
        onSettled: (target) => queues.workers.add(target.workerKey),
        signal: this.stopping.signal,
      }),
      // Fewer keys in flight than libuv's 4 threads, so DNS and file work always find one free.
      keys: new KeyFactory((workerKey) => queues.workers.add(workerKey), Math.max(1, Math.min(availableParallelism(), 3))),
      registrations: new Registrations(),
      demand: new DemandWatchers((poolKey) => queues.pools.add(poolKey), log),
      log,
      options: { stuckPodGraceMs: opts.stuckPodGraceMs },
      observer: opts.observer,
      signal: this.stopping.signal,
    };
    this.ctx = ctx;
  }

  /** Lists and watches everything; resolves once every cache is synced. */
  async start(signal?: AbortSignal): Promise<void> {
    const { caches } = this.ctx;
    const all = [caches.pools, caches.workers, caches.pods, caches.secrets, caches.budgets];
    for (const informer of all) informer.start();
    await Promise.all(all.map((i) => i.waitForSync(signal)));
    // The Secrets the pools reference, watched one by one, and kept in step with the pools.
    const track = (): void => caches.secrets.track(referencedSecretKeys(caches.pools.list()));
    track();
    caches.pools.addEventHandler({ onAdd: track, onUpdate: track, onDelete: track });
    await caches.secrets.waitForSync(signal);
    // Handlers only now: a reconcile on a half-filled cache would, say, call a Secret missing that is not.
    // addEventHandler replays every cached object, so nothing listed is missed.
    watchPools(this.ctx);
    watchWorkers(this.ctx);
    watchRunPods(this.ctx);
    this.synced = true;
    this.opts.log.info('caches synced', { pools: caches.pools.size, workers: caches.workers.size, runPods: caches.pods.size });
    void this.awaitSessionsBack();
  }

  /** Opens the log relays' gate once the Workers enqueued at the start are done and their sessions settled. */
  private async awaitSessionsBack(): Promise<void> {
    const { queues, sessions } = this.ctx;
    const started = Date.now();
    const back = (): boolean => queues.workers.depth === 0 && queues.workers.inFlight === 0 && sessions.openingCount === 0;
    while (!back() && Date.now() - started < RELAYS_WAIT_FOR_SESSIONS_MAX_MS && !this.stopping.signal.aborted) {
      await sleep(100, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    }
    this.opts.log.info('worker sessions back; run log relays begin', { sessions: sessions.count, connected: sessions.connectedCount, waitedMs: Date.now() - started });
    this.sessionsBack();
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /**
   * Stops taking work and closes every session cleanly: the broker keeps the
   * sessions and queues what the backend sends meanwhile, and run Pods keep
   * running for the next leader to adopt. Reconciles and message handlers in
   * flight are cancelled (their API calls and waits end); like a crash at that
   * point, that loses nothing the next leader does not redo.
   */
  async stop(): Promise<void> {
    const { caches, queues, sessions, backends, demand } = this.ctx;
    this.stopping.abort(new Error('the controller is stopping'));
    demand.stopAll();
    this.ctx.logs.stopAll();
    await Promise.all([queues.pools.shutdown(), queues.workers.shutdown()]);
    await sessions.closeAll();
    await Promise.all([caches.pools.stop(), caches.workers.stop(), caches.pods.stop(), caches.secrets.stop(), caches.budgets.stop()]);
    backends.closeAll();
  }
}
