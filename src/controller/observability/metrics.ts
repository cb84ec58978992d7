/**
 * The controller's Prometheus metrics, in a registry of their own (not
 * prom-client's global one, so tests and embedders get a clean set).
 *
 * Three families (every name and label is documented in docs/metrics.md):
 * - the names of the real controller, `spacelift_workerpool_controller_*`;
 * - the names its companion exporter served, `spacelift_worker_pool_*`, read
 *   from the backend at scrape time, so an autoscaler needs nothing else;
 * - our own, `workerpool_controller_*`: run Pod latency and outcomes,
 *   reconciles, MQTT sessions, queue depth, rejected messages.
 *
 * Gauges that describe state are computed at scrape time from what the
 * leader holds (its caches, sessions, queues, backend clients). A standby
 * holds nothing, so it serves the process metrics and zero counters only.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LABEL_WORKERPOOL } from '../../api/constants.js';
import type { PoolStats, RunStatus } from '../../protocol/index.js';
import type { WorkerObject, WorkerPoolObject } from '../../api/types.js';
import type { ControllerContext, ControllerObserver } from '../context.js';
import { CANNOT_START_REASONS } from '../runs/pod-status.js';
import type { Logger } from '../../runtime/log.js';
import type { ReconcileReport } from '../../runtime/queue.js';

/** Prefix of the names this controller adds beyond the real controller's and the exporter's. */
export const OWN_PREFIX = 'workerpool_controller_';

export type ReconcileKind = 'workerpool' | 'worker';

/** What the metrics read at scrape time; the leader's {@link ControllerContext} in production. */
export interface MetricsSource {
  workers(): readonly WorkerObject[];
  /** The pools, for the autoscaler's gauges. */
  pools(): readonly WorkerPoolObject[];
  /** Backend clients by pool key ("namespace/name"). */
  backendClients(): ReadonlyMap<string, { poolStats(): Promise<PoolStats> }>;
  sessions(): { readonly count: number; readonly connectedCount: number; readonly reconnectCount: number };
  queueDepth(): Readonly<Record<ReconcileKind, number>>;
}

export function sourceOf(ctx: ControllerContext): MetricsSource {
  return {
    workers: () => ctx.caches.workers.list(),
    pools: () => ctx.caches.pools.list(),
    backendClients: () => ctx.backends.clients(),
    sessions: () => ctx.sessions,
    queueDepth: () => ({ workerpool: ctx.queues.pools.depth, worker: ctx.queues.workers.depth }),
  };
}

// ---- run outcome reason classes ---------------------------------------------

/**
 * The bounded set of `reason_class` values. A run's reason is free text (it
 * names images, exit codes, event messages); as a label it would make a new
 * series per run, so it is reduced to one of these.
 */
export const REASON_CLASSES = [
  'none',
  'stopped',
  'exit_code',
  'oom_killed',
  'deadline_exceeded',
  'evicted',
  'unschedulable',
  'image_pull',
  'container_config',
  'crash_loop',
  'pod_deleted',
  'pod_disappeared',
  'pod_rejected',
  'worker_busy',
  'run_config',
  'other',
] as const;
export type ReasonClass = (typeof REASON_CLASSES)[number];

const IMAGE_PULL = new Set(['ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull', 'InvalidImageName']);
const CONTAINER_CONFIG = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/**
 * The class of a run's end. Matches the reasons the controller itself writes
 * (pod-status.ts, runs.ts, run-pod.ts); the unit tests build those reasons
 * with the same functions, so a reworded reason fails a test rather than
 * silently landing in `other`.
 */
export function reasonClass(status: RunStatus, reason: string | undefined): ReasonClass {
  if (status === 'stopped') return 'stopped';
  if (reason === undefined || reason.trim() === '') return 'none';
  // Pod-level causes come first in a reason, so they win over the exit code that follows.
  if (reason.includes('DeadlineExceeded)')) return 'deadline_exceeded';
  if (reason.includes('(Evicted)')) return 'evicted';
  if (reason.includes('OOMKilled')) return 'oom_killed';
  if (reason.includes('(Unschedulable)')) return 'unschedulable';
  const cannotStart = /\((?<reason>[A-Za-z]+)(?:[,)])/.exec(reason)?.groups?.reason;
  if (cannotStart !== undefined && (CANNOT_START_REASONS as readonly string[]).includes(cannotStart)) {
    if (IMAGE_PULL.has(cannotStart)) return 'image_pull';
    if (CONTAINER_CONFIG.has(cannotStart)) return 'container_config';
    if (cannotStart === 'CrashLoopBackOff') return 'crash_loop';
  }
  if (/exited with code -?\d+/.test(reason)) return 'exit_code';
  if (reason.includes('run Pod was deleted before the run ended')) return 'pod_deleted';
  if (reason.includes('run Pod disappeared')) return 'pod_disappeared';
  if (reason.includes('API server refused the run Pod')) return 'pod_rejected';
  if (/ is busy with run /.test(reason)) return 'worker_busy';
  if (/runner image|allowedRunnerImageHosts|^invalid spec\.|spec\.pod\.| is named "/.test(reason)) return 'run_config';
  return 'other';
}

// ---- backend pool stats, cached ----------------------------------------------

export interface PoolStatsEntry {
  readonly poolKey: string;
  readonly poolName: string;
  readonly stats: PoolStats;
}

export interface PoolStatsCacheOptions {
  /** A scrape within this long of the last one reuses its answers. Default 5 s. */
  readonly ttlMs?: number;
  /** Per-pool deadline of a stats call. Default 3 s. */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** Called once per pool whose stats could not be had; the scrape goes on without it. */
  readonly onError?: (poolKey: string, error: unknown) => void;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms}ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Every pool's stats from the backend, fetched in parallel at most once per
 * `ttlMs`, so the four exporter gauges of one scrape (and scrapes by several
 * Prometheus replicas) cost one call per pool.
 */
export class PoolStatsCache {
  private last?: { at: number; result: Promise<PoolStatsEntry[]> };
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly options: PoolStatsCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? 3_000;
    this.now = options.now ?? Date.now;
  }

  get(clients: ReadonlyMap<string, { poolStats(): Promise<PoolStats> }>): Promise<PoolStatsEntry[]> {
    const now = this.now();
    if (this.last !== undefined && now - this.last.at < this.ttlMs) return this.last.result;
    const result = Promise.all(
      [...clients].map(async ([poolKey, client]): Promise<PoolStatsEntry | undefined> => {
        try {
          const stats = await withTimeout(client.poolStats(), this.timeoutMs, `stats of pool ${poolKey}`);
          return { poolKey, poolName: poolKey.slice(poolKey.indexOf('/') + 1), stats };
        } catch (error) {
          this.options.onError?.(poolKey, error);
          return undefined;
        }
      }),
    ).then((entries) => entries.filter((e): e is PoolStatsEntry => e !== undefined));
    this.last = { at: now, result };
    return result;
  }

  /** Forgets the cached answers (the leader changed, say). */
  clear(): void {
    this.last = undefined;
  }
}

// ---- worker counts from the cache ----------------------------------------------

/** Workers and idle Workers per pool id (`pool_ulid`), from the Worker cache. */
export function countWorkers(workers: readonly WorkerObject[]): Map<string, { total: number; idle: number }> {
  const out = new Map<string, { total: number; idle: number }>();
  for (const w of workers) {
    const poolId = w.metadata.labels?.[LABEL_WORKERPOOL];
    if (poolId === undefined || poolId === '') continue;
    const c = out.get(poolId) ?? { total: 0, idle: 0 };
    c.total++;
    if (w.status?.state === 'Idle') c.idle++;
    out.set(poolId, c);
  }
  return out;
}

// ---- the registry ---------------------------------------------------------------

export interface ControllerMetricsOptions {
  /** Adds prom-client's process and Node.js metrics (CPU, memory, event loop, GC). Default true. */
  readonly defaultMetrics?: boolean;
  readonly poolStats?: Omit<PoolStatsCacheOptions, 'onError'>;
  readonly log?: Logger;
}

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const CREATION_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function seconds(ms: number): number {
  return Math.max(0, ms) / 1000;
}

export class ControllerMetrics {
  readonly registry = new Registry();
  private source: MetricsSource | undefined;
  /** Reconnects counted by sessions of earlier leaderships, so the counter never goes back. */
  private retiredReconnects = 0;
  private readonly poolStats: PoolStatsCache;

  readonly workerCreationDuration: Histogram;
  readonly workerCreationErrors: Counter;
  readonly runPodCreationLatency: Histogram;
  readonly runPodStartLatency: Histogram;
  readonly runOutcomes: Counter<'status' | 'reason_class'>;
  readonly reconcileDuration: Histogram<'kind'>;
  readonly reconcileTotal: Counter<'kind' | 'outcome'>;
  readonly reconcileErrors: Counter<'kind'>;
  readonly messagesRejected: Counter;
  readonly autoscalingDecisions: Counter<'direction'>;
  readonly backendStatsErrors: Counter;

  constructor(options: ControllerMetricsOptions = {}) {
    const registers = [this.registry];
    const log = options.log;
    this.poolStats = new PoolStatsCache({
      ...options.poolStats,
      onError: (poolKey, error) => {
        this.backendStatsErrors.inc();
        log?.debug('could not read pool stats from the backend for metrics', { pool: poolKey, error });
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    // The real controller's names.
    this.workerCreationDuration = new Histogram({
      name: 'spacelift_workerpool_controller_worker_creation_duration_seconds',
      help: 'Time from a Worker object being created to its worker being registered with the backend (key generated, certificate issued).',
      buckets: CREATION_BUCKETS,
      registers,
    });
    this.workerCreationErrors = new Counter({
      name: 'spacelift_workerpool_controller_worker_creation_errors_total',
      help: 'Failed attempts to create a worker: key generation, key storage or registration with the backend.',
      registers,
    });
    const self = this;
    new Gauge({
      name: 'spacelift_workerpool_controller_worker_idle_total',
      help: 'Workers that are registered, connected and have no run, per pool (from the Worker cache).',
      labelNames: ['pool_ulid'],
      registers,
      collect() {
        this.reset();
        for (const [poolId, c] of countWorkers(self.source?.workers() ?? [])) this.set({ pool_ulid: poolId }, c.idle);
      },
    });
    new Gauge({
      name: 'spacelift_workerpool_controller_worker_total',
      help: 'Worker objects per pool (from the Worker cache).',
      labelNames: ['pool_ulid'],
      registers,
      collect() {
        this.reset();
        for (const [poolId, c] of countWorkers(self.source?.workers() ?? [])) this.set({ pool_ulid: poolId }, c.total);
      },
    });

    // The exporter's names, from the backend.
    const exporterGauge = (name: string, help: string, value: (s: PoolStats) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['worker_pool_id', 'worker_pool_name'],
        registers,
        async collect() {
          const source = self.source;
          const entries = source === undefined ? [] : await self.poolStats.get(source.backendClients());
          this.reset();
          for (const e of entries) this.set({ worker_pool_id: e.stats.poolId, worker_pool_name: e.poolName }, value(e.stats));
        },
      });
    };
    exporterGauge('spacelift_worker_pool_runs_pending', 'Runs queued in the backend for the pool and not yet sent to a worker.', (s) => s.pendingRuns);
    exporterGauge('spacelift_worker_pool_workers_busy', 'Workers of the pool with a run, as the backend sees them.', (s) => s.workers.busy);
    exporterGauge('spacelift_worker_pool_workers', 'Workers registered in the pool, as the backend sees them.', (s) => s.workers.total);
    exporterGauge('spacelift_worker_pool_workers_drained', 'Workers of the pool drained in the backend (they take no new runs).', (s) => s.workers.drained);
    this.backendStatsErrors = new Counter({
      name: `${OWN_PREFIX}backend_stats_errors_total`,
      help: 'Pool stats calls to the backend that failed or timed out during a scrape; that pool is left out of the spacelift_worker_pool_* metrics of the scrape.',
      registers,
      // Registries collect in parallel: wait for this scrape's calls so that their errors count in it.
      async collect() {
        const source = self.source;
        if (source !== undefined) await self.poolStats.get(source.backendClients());
      },
    });

    // Our own.
    this.runPodCreationLatency = new Histogram({
      name: `${OWN_PREFIX}run_pod_creation_latency_seconds`,
      help: 'Time from a schedule message arriving to its run Pod being created.',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.runPodStartLatency = new Histogram({
      name: `${OWN_PREFIX}run_pod_start_latency_seconds`,
      help: 'Time from a run Pod being created to its run being reported running (all containers started).',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.runOutcomes = new Counter({
      name: `${OWN_PREFIX}run_outcomes_total`,
      help: 'Runs whose end was reported to the backend, by status and reason class.',
      labelNames: ['status', 'reason_class'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: `${OWN_PREFIX}reconcile_duration_seconds`,
      help: 'Duration of reconciles, by kind.',
      labelNames: ['kind'],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.reconcileTotal = new Counter({
      name: `${OWN_PREFIX}reconcile_total`,
      help: 'Reconciles, by kind and outcome (success, requeue, retry, retryLater, terminal).',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: `${OWN_PREFIX}reconcile_errors_total`,
      help: 'Reconciles that ended in an error (retried with back-off, deferred, or terminal), by kind.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['workerpool', 'worker'] as const) {
      this.reconcileErrors.inc({ kind }, 0);
      this.reconcileDuration.zero({ kind });
    }
    new Gauge({
      name: `${OWN_PREFIX}mqtt_sessions`,
      help: 'MQTT sessions the controller holds, one per registered Worker (leader only).',
      registers,
      collect() {
        this.set(self.source?.sessions().count ?? 0);
      },
    });
    new Gauge({
      name: `${OWN_PREFIX}mqtt_sessions_connected`,
      help: 'MQTT sessions currently connected to the broker.',
      registers,
      collect() {
        this.set(self.source?.sessions().connectedCount ?? 0);
      },
    });
    new Counter({
      name: `${OWN_PREFIX}mqtt_reconnects_total`,
      help: 'Times a session connected again after losing its connection.',
      registers,
      collect() {
        this.reset();
        this.inc(self.retiredReconnects + (self.source?.sessions().reconnectCount ?? 0));
      },
    });
    new Gauge({
      name: `${OWN_PREFIX}workqueue_depth`,
      help: 'Keys waiting in the work queue to be reconciled now (not delayed, not in flight), by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        const depth = self.source?.queueDepth() ?? { workerpool: 0, worker: 0 };
        this.set({ kind: 'workerpool' }, depth.workerpool);
        this.set({ kind: 'worker' }, depth.worker);
      },
    });
    // One gauge per pool, from the pools in the cache; `value` undefined leaves the pool out.
    const poolGauge = (name: string, help: string, value: (p: WorkerPoolObject) => number | undefined): void => {
      new Gauge({
        name: `${OWN_PREFIX}${name}`,
        help,
        labelNames: ['pool_ulid', 'namespace', 'name'],
        registers,
        collect() {
          this.reset();
          for (const p of self.source?.pools() ?? []) {
            const v = value(p);
            if (v !== undefined) this.set({ pool_ulid: p.status?.poolId ?? '', namespace: p.metadata.namespace ?? '', name: p.metadata.name ?? '' }, v);
          }
        },
      });
    };
    // The pools' sizes as `kubectl get workerpools` shows them, from their status.
    poolGauge('pool_desired_workers', 'status.desiredPoolSize of each pool: the size the controller is working towards.', (p) => p.status?.desiredPoolSize);
    poolGauge('pool_actual_workers', 'status.actualPoolSize of each pool: workers registered and connected.', (p) => p.status?.actualPoolSize);
    poolGauge('pool_busy_workers', 'status.busyWorkers of each pool: workers running a run.', (p) => p.status?.busyWorkers);
    poolGauge('pool_idle_workers', 'status.idleWorkers of each pool: registered, connected workers waiting for a run.', (p) => p.status?.idleWorkers);
    // The autoscaler: only pools with spec.autoscaling that the backend knows.
    const autoscalingGauge = (name: string, help: string, value: (p: WorkerPoolObject) => number | undefined): void =>
      poolGauge(`autoscaling_${name}`, help, (p) => (p.spec.autoscaling === undefined || p.status?.poolId === undefined ? undefined : value(p)));
    autoscalingGauge('desired_workers', 'The pool size the autoscaler asks for, per autoscaled pool.', (p) => p.status?.autoscaling?.recommendation);
    autoscalingGauge('min_workers', 'spec.autoscaling.minPoolSize, per autoscaled pool.', (p) => p.spec.autoscaling?.minPoolSize);
    autoscalingGauge('max_workers', 'spec.autoscaling.maxPoolSize, per autoscaled pool.', (p) => p.spec.autoscaling?.maxPoolSize);
    this.autoscalingDecisions = new Counter({
      name: `${OWN_PREFIX}autoscaling_decisions_total`,
      help: 'Changes of an autoscaled pool\'s size, by direction (up, down).',
      labelNames: ['direction'],
      registers,
    });
    for (const direction of ['up', 'down']) this.autoscalingDecisions.inc({ direction }, 0);
    this.messagesRejected = new Counter({
      name: `${OWN_PREFIX}messages_rejected_total`,
      help: 'Messages from the backend that failed validation (malformed, unknown type or version, wrong topic) and were dropped.',
      registers,
    });
  }

  /** Starts reading the leader's state at scrape time; `undefined` when it stops. */
  attach(source: MetricsSource | undefined): void {
    if (this.source !== undefined) this.retiredReconnects += this.source.sessions().reconnectCount;
    this.source = source;
    this.poolStats.clear();
  }

  /** The hooks for {@link ControllerContext.observer}. */
  readonly observer: ControllerObserver = {
    onPodCreated: (_runId, scheduledAtMs) => this.runPodCreationLatency.observe(seconds(Date.now() - scheduledAtMs)),
    onRunning: (_runId, podCreatedAt) => {
      const created = podCreatedAt === undefined ? NaN : Date.parse(podCreatedAt);
      if (!Number.isNaN(created)) this.runPodStartLatency.observe(seconds(Date.now() - created));
    },
    onOutcome: (status, reason) => this.runOutcomes.inc({ status, reason_class: reasonClass(status, reason) }),
    onWorkerRegistered: (createdAt) => {
      const created = createdAt === undefined ? NaN : Date.parse(createdAt);
      if (!Number.isNaN(created)) this.workerCreationDuration.observe(seconds(Date.now() - created));
    },
    onWorkerCreationFailed: () => this.workerCreationErrors.inc(),
    onAutoscaled: (direction) => this.autoscalingDecisions.inc({ direction }),
  };

  observeReconcile(kind: ReconcileKind, report: ReconcileReport): void {
    this.reconcileDuration.observe({ kind }, seconds(report.durationMs));
    this.reconcileTotal.inc({ kind, outcome: report.outcome });
    if (report.outcome === 'retry' || report.outcome === 'retryLater' || report.outcome === 'terminal') this.reconcileErrors.inc({ kind });
  }

  messageRejected(): void {
    this.messagesRejected.inc();
  }

  /** The exposition text. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
