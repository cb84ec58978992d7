/**
 * What every reconciler shares: the API client, the informer caches, the
 * backend access, the MQTT sessions, the event recorder and the queues.
 */
import {
  API_GROUP,
  API_VERSION,
  WORKER_KIND,
  WORKER_PLURAL,
  WORKERPOOL_KIND,
  WORKERPOOL_PLURAL,
} from '../api/constants.js';
import type { WorkerObject, WorkerPoolObject } from '../api/types.js';
import type { BackendAccess } from './backend/access.js';
import type { EventRecorder } from '../runtime/events.js';
import type { Expectations } from './pool/expectations.js';
import type { Informer } from '../runtime/informer.js';
import { resource, type KubeClient, type Pod, type Secret } from '../runtime/k8s-client.js';
import type { Logger } from '../runtime/log.js';
import type { WorkQueue } from '../runtime/queue.js';
import type { RunStatus } from '../protocol/index.js';
import type { KeyFactory } from './worker/key-factory.js';
import type { RunObserver } from './runs/controller.js';
import type { SessionManager } from './backend/sessions.js';

export const WORKERPOOL_REF = resource<WorkerPoolObject>(API_GROUP, API_VERSION, WORKERPOOL_PLURAL, WORKERPOOL_KIND);
export const WORKER_REF = resource<WorkerObject>(API_GROUP, API_VERSION, WORKER_PLURAL, WORKER_KIND);

/** Index of the Worker cache: "<namespace>/<pool name>" -> the pool's Workers. */
export const INDEX_WORKERS_BY_POOL = 'pool';

export interface Caches {
  readonly pools: Informer<WorkerPoolObject>;
  readonly workers: Informer<WorkerObject>;
  /** Only run Pods (selected by the managed-by label), indexed by the worker label. */
  readonly pods: Informer<Pod>;
  readonly secrets: Informer<Secret>;
}

export interface Queues {
  readonly pools: WorkQueue;
  readonly workers: WorkQueue;
}

export interface ControllerOptions {
  /** How long a run Pod may be unable to start before its run is failed. */
  readonly stuckPodGraceMs: number;
}

export interface ControllerContext {
  readonly client: KubeClient;
  readonly caches: Caches;
  readonly queues: Queues;
  readonly backends: BackendAccess;
  readonly sessions: SessionManager;
  readonly events: EventRecorder;
  readonly expectations: Expectations;
  readonly log: Logger;
  readonly options: ControllerOptions;
  /**
   * Runs whose Pod this process created but the cache has not shown yet, by
   * worker key. Until it does, the worker counts as busy: announcing "idle"
   * after accepting a run would make the backend fail that run.
   */
  readonly pendingRuns: Map<string, string>;
  /** Worker keys made outside the reconciles that need them (see `key-factory.ts`). */
  readonly keys: KeyFactory;
  /**
   * Progress reports (`pod-created`, `running`) already sent, by Pod uid. In
   * memory only: writing each to the Pod would double a run's API writes, and
   * after a restart re-sending one is harmless (the backend ignores a status
   * that does not move a run forward). The end of a run is recorded on the
   * Pod, because the release of its finalizer depends on it.
   */
  readonly progressReports: Map<string, RunStatus>;
  /** Hooks for metrics. */
  readonly observer?: ControllerObserver;
}

/** What the metrics observe: runs, and the creation of workers. All optional. */
export interface ControllerObserver extends RunObserver {
  /** A Worker got its key and registration; `createdAt` is the Worker's creationTimestamp. */
  onWorkerRegistered?(createdAt: string | undefined): void;
  /** Making a worker's key, storing it or registering it failed (it is retried). */
  onWorkerCreationFailed?(error: unknown): void;
}

export function workersOfPool(ctx: ControllerContext, namespace: string, poolName: string): WorkerObject[] {
  return ctx.caches.workers.byIndex(INDEX_WORKERS_BY_POOL, `${namespace}/${poolName}`);
}
