/**
 * What every reconciler shares: the API client, the informer caches, the
 * backend access, the MQTT sessions, the event recorder, the queues and the
 * run tracker.
 */
import type { WorkerObject, WorkerPoolObject } from '../api/types.js';
import type { RunStatus } from '../protocol/index.js';
import type { EventRecorder } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { KubeClient, Pod, PodDisruptionBudget } from '../runtime/k8s-client.js';
import type { Logger } from '../runtime/log.js';
import type { WorkQueue } from '../runtime/queue.js';
import type { BackendAccess } from './backend/access.js';
import type { DemandWatchers } from './backend/demand.js';
import type { SessionManager } from './backend/sessions.js';
import { objectKey } from './keys.js';
import type { Expectations } from './pool/expectations.js';
import type { LogRelays } from './runs/log-relay.js';
import type { RunTracker } from './runs/tracker.js';
import type { SecretCache } from './secret-cache.js';
import type { KeyFactory } from './worker/key-factory.js';
import type { Registrations } from './worker/registrations.js';

/** Index of the Worker cache: the pool's key -> the pool's Workers. */
export const INDEX_WORKERS_BY_POOL = 'pool';

export interface Caches {
  readonly pools: Informer<WorkerPoolObject>;
  readonly workers: Informer<WorkerObject>;
  /** Only run Pods (selected by the managed-by label), indexed by the worker label. */
  readonly pods: Informer<Pod>;
  /** Only the Workers' own Secrets and those pools reference (see `secret-cache.ts`). */
  readonly secrets: SecretCache;
  /** Only the PodDisruptionBudgets the controller made (selected by the managed-by label). */
  readonly budgets: Informer<PodDisruptionBudget>;
}

export interface Queues {
  readonly pools: WorkQueue;
  readonly workers: WorkQueue;
}

export interface ControllerOptions {
  /** How long a run Pod may be unable to start before its run is failed. */
  readonly stuckPodGraceMs: number;
}

/** What the metrics observe of runs. All optional. */
export interface RunObserver {
  onPodCreated?(runId: string, scheduledAtMs: number): void;
  onRunning?(runId: string, podCreatedAt: string | undefined): void;
  onOutcome?(status: RunStatus, reason: string | undefined): void;
}

/** What the metrics observe: runs, and the creation of workers. All optional. */
export interface ControllerObserver extends RunObserver {
  /** A Worker got its key and registration; `createdAt` is the Worker's creationTimestamp. */
  onWorkerRegistered?(createdAt: string | undefined): void;
  /** Making a worker's key, storing it or registering it failed (it is retried). */
  onWorkerCreationFailed?(error: unknown): void;
  /** The autoscaler changed a pool's size. */
  onAutoscaled?(direction: 'up' | 'down'): void;
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
  /** What this process knows of its runs before the cache does. */
  readonly runs: RunTracker;
  /** The runs' log relays to the backend. */
  readonly logs: LogRelays;
  /** Worker keys made outside the reconciles that need them (see `worker/key-factory.ts`). */
  readonly keys: KeyFactory;
  /** Registrations written to Secrets that the cache does not show yet. */
  readonly registrations: Registrations;
  /** The backend's demand of each autoscaled pool. */
  readonly demand: DemandWatchers;
  /** Hooks for metrics. */
  readonly observer?: ControllerObserver;
  /** Fires when the work this context was handed to must stop: API calls and waits end with it. */
  readonly signal: AbortSignal;
}

/** The context for one reconcile: its API calls and waits end when the queue shuts down. */
export function forReconcile(ctx: ControllerContext, signal: AbortSignal): ControllerContext {
  const both = AbortSignal.any([ctx.signal, signal]);
  return { ...ctx, client: ctx.client.withSignal(both), signal: both };
}

export function workersOfPool(ctx: ControllerContext, pool: WorkerPoolObject): WorkerObject[] {
  return ctx.caches.workers.byIndex(INDEX_WORKERS_BY_POOL, objectKey(pool));
}
