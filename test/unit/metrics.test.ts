import { describe, expect, it } from 'vitest';
import type { WorkerObject } from '../../src/api/types.js';
import { checkRunnerImageAllowed } from '../../src/controller/runs/image-host.js';
import {
  ControllerMetrics,
  countWorkers,
  PoolStatsCache,
  REASON_CLASSES,
  reasonClass,
  type MetricsSource,
} from '../../src/controller/observability/metrics.js';
import { classifyRunPod, describeCannotStart, describeTermination, withRecentEvents } from '../../src/controller/runs/pod-status.js';
import { MissingRunnerImageError, NameConflictError, RunnerImageNotAllowedError } from '../../src/controller/runs/run-pod.js';
import { InvalidTimeoutError } from '../../src/controller/runs/run-timeouts.js';
import type { PoolStats } from '../../src/protocol/index.js';

const since = new Date();

function failedPod(reason: string): string {
  const pod = { metadata: { creationTimestamp: since.toISOString() }, status: { phase: 'Failed', reason, message: 'x' } };
  const status = classifyRunPod(pod as never, new Date());
  return status.reason ?? '';
}

describe('reasonClass', () => {
  it.each([
    ['finished', undefined, 'none'],
    ['stopped', 'stopped on request', 'stopped'],
    ['failed', describeTermination('worker', { exitCode: 3, reason: 'Error' }), 'exit_code'],
    ['failed', describeTermination('init', { exitCode: 1 }), 'exit_code'],
    ['failed', describeTermination('worker', { exitCode: 137, reason: 'OOMKilled' }), 'oom_killed'],
    ['failed', failedPod('DeadlineExceeded'), 'deadline_exceeded'],
    ['failed', failedPod('Evicted'), 'evicted'],
    ['failed', `${failedPod('Evicted')}; ${describeTermination('worker', { exitCode: 137, reason: 'Error' })}`, 'evicted'],
    ['failed', describeCannotStart({ reason: 'Unschedulable', message: '0/3 nodes are available', since, sinceKnown: true }, 300_000), 'unschedulable'],
    ['failed', describeCannotStart({ reason: 'ImagePullBackOff', container: 'worker', message: 'Back-off pulling image "x"', since, sinceKnown: true }, 300_000), 'image_pull'],
    ['failed', withRecentEvents(describeCannotStart({ reason: 'ErrImagePull', container: 'init', initContainer: true, message: '', since, sinceKnown: true }, 1_000), [{ type: 'Warning', reason: 'Failed', message: 'Failed to pull image (Error) x' }]), 'image_pull'],
    ['failed', describeCannotStart({ reason: 'InvalidImageName', container: 'worker', message: '', since, sinceKnown: true }, 0), 'image_pull'],
    ['failed', describeCannotStart({ reason: 'CreateContainerConfigError', container: 'worker', message: 'secret "x" not found', since, sinceKnown: true }, 300_000), 'container_config'],
    ['failed', describeCannotStart({ reason: 'CrashLoopBackOff', container: 'launcher-grpc', initContainer: true, message: '', lastExitCode: 2, since, sinceKnown: true }, 300_000), 'crash_loop'],
    ['failed', 'the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)', 'pod_deleted'],
    ['failed', 'the run Pod disappeared before its end was reported', 'pod_disappeared'],
    ['failed', 'the API server refused the run Pod: Pod "x" is invalid', 'pod_rejected'],
    ['failed', 'worker 01ABC is busy with run 01DEF', 'worker_busy'],
    ['failed', new MissingRunnerImageError().message, 'run_config'],
    ['failed', new RunnerImageNotAllowedError('evil.io/x', (checkRunnerImageAllowed('evil.io/x', ['registry.example.com']) as { reason: string }).reason).message, 'run_config'],
    ['failed', new NameConflictError('spec.pod.volumes[0].name', 'workspace', 'the controller uses for the workspace').message, 'run_config'],
    ['failed', new InvalidTimeoutError('spec.pod.activeDeadlineSeconds', -1, 'must be positive').message, 'run_config'],
    ['failed', 'something nobody foresaw', 'other'],
  ] as const)('%s %j -> %s', (status, reason, expected) => {
    expect(reasonClass(status, reason)).toBe(expected);
  });

  it('only ever returns one of the documented classes', () => {
    for (const r of [undefined, '', '(', '(Foo)', 'exited with code', '(ImagePullBackOff']) {
      expect(REASON_CLASSES).toContain(reasonClass('failed', r));
    }
  });
});

function worker(poolId: string | undefined, state?: string): WorkerObject {
  return {
    metadata: { name: 'w', namespace: 'ns', labels: poolId === undefined ? {} : { 'workers.spacelift.io/workerpool': poolId } },
    spec: { poolName: 'p', workerId: 'x' },
    status: state === undefined ? undefined : { state },
  } as unknown as WorkerObject;
}

describe('countWorkers', () => {
  it('counts per pool id, idle ones apart, and skips unlabelled Workers', () => {
    const counts = countWorkers([worker('A', 'Idle'), worker('A', 'Busy'), worker('A'), worker('B', 'Draining'), worker(undefined, 'Idle')]);
    expect(Object.fromEntries(counts)).toEqual({ A: { total: 3, idle: 1 }, B: { total: 1, idle: 0 } });
  });
});

function stats(poolId: string, pendingRuns = 0): PoolStats {
  return { poolId, pendingRuns, workers: { total: 3, idle: 1, busy: 2, drained: 1, offline: 0 } };
}

describe('PoolStatsCache', () => {
  it('asks each pool once per TTL, and leaves out a pool whose call fails or hangs', async () => {
    let now = 0;
    const calls: string[] = [];
    const errors: string[] = [];
    const cache = new PoolStatsCache({ ttlMs: 5_000, timeoutMs: 50, now: () => now, onError: (k) => errors.push(k) });
    const clients = new Map([
      ['ns/good', { poolStats: async () => (calls.push('good'), stats('GOOD', 4)) }],
      ['ns/broken', { poolStats: async () => (calls.push('broken'), Promise.reject(new Error('backend down'))) }],
      ['ns/slow', { poolStats: () => (calls.push('slow'), new Promise<PoolStats>(() => undefined)) }],
    ]);
    const first = await cache.get(clients);
    expect(first).toEqual([{ poolKey: 'ns/good', poolName: 'good', stats: stats('GOOD', 4) }]);
    expect(errors.sort()).toEqual(['ns/broken', 'ns/slow']);
    now = 4_999;
    await cache.get(clients);
    expect(calls).toHaveLength(3);
    now = 5_000;
    await cache.get(clients);
    expect(calls).toHaveLength(6);
  });
});

function fakeSource(over: Partial<MetricsSource> = {}): MetricsSource & { reconnects: number } {
  const s: MetricsSource & { reconnects: number } = {
    reconnects: 0,
    workers: () => [worker('01POOL', 'Idle'), worker('01POOL', 'Busy')],
    pools: () => [
      {
        apiVersion: 'workers.spacelift.io/v1beta1',
        kind: 'WorkerPool',
        metadata: { name: 'pool-a', namespace: 'team' },
        spec: { autoscaling: { minPoolSize: 1, maxPoolSize: 6 } },
        status: { poolId: '01POOL', autoscaling: { recommendation: 4 } },
      },
      { apiVersion: 'workers.spacelift.io/v1beta1', kind: 'WorkerPool', metadata: { name: 'fixed', namespace: 'team' }, spec: { poolSize: 2 }, status: { poolId: '01FIXED' } },
    ],
    backendClients: () => new Map([['team/pool-a', { poolStats: async () => stats('01POOL', 7) }]]),
    sessions(): { count: number; connectedCount: number; reconnectCount: number } {
      return { count: 2, connectedCount: 1, reconnectCount: s.reconnects };
    },
    queueDepth: () => ({ workerpool: 1, worker: 5 }),
    ...over,
  };
  return s;
}

describe('ControllerMetrics', () => {
  it('serves every documented name from its own registry, with the default metrics', async () => {
    const m = new ControllerMetrics();
    m.attach(fakeSource());
    m.observer.onWorkerRegistered?.(new Date(Date.now() - 2_000).toISOString());
    m.observer.onWorkerCreationFailed?.(new Error('x'));
    m.observer.onPodCreated?.('R', Date.now() - 100);
    m.observer.onRunning?.('R', new Date(Date.now() - 3_000).toISOString());
    m.observer.onOutcome?.('failed', describeTermination('worker', { exitCode: 2 }));
    m.observeReconcile('worker', { key: 'ns/w', outcome: 'retry', durationMs: 12 });
    m.messageRejected();
    const text = await m.metrics();
    for (const line of [
      'spacelift_workerpool_controller_worker_creation_duration_seconds_count 1',
      'spacelift_workerpool_controller_worker_creation_errors_total 1',
      'spacelift_workerpool_controller_worker_idle_total{pool_ulid="01POOL"} 1',
      'spacelift_workerpool_controller_worker_total{pool_ulid="01POOL"} 2',
      'spacelift_worker_pool_runs_pending{worker_pool_id="01POOL",worker_pool_name="pool-a"} 7',
      'spacelift_worker_pool_workers_busy{worker_pool_id="01POOL",worker_pool_name="pool-a"} 2',
      'spacelift_worker_pool_workers{worker_pool_id="01POOL",worker_pool_name="pool-a"} 3',
      'spacelift_worker_pool_workers_drained{worker_pool_id="01POOL",worker_pool_name="pool-a"} 1',
      'workerpool_controller_run_pod_creation_latency_seconds_count 1',
      'workerpool_controller_run_pod_start_latency_seconds_count 1',
      'workerpool_controller_run_outcomes_total{status="failed",reason_class="exit_code"} 1',
      'workerpool_controller_reconcile_duration_seconds_count{kind="worker"} 1',
      'workerpool_controller_reconcile_total{kind="worker",outcome="retry"} 1',
      'workerpool_controller_reconcile_errors_total{kind="worker"} 1',
      'workerpool_controller_reconcile_errors_total{kind="workerpool"} 0',
      'workerpool_controller_mqtt_sessions 2',
      'workerpool_controller_mqtt_sessions_connected 1',
      'workerpool_controller_mqtt_reconnects_total 0',
      'workerpool_controller_workqueue_depth{kind="worker"} 5',
      'workerpool_controller_messages_rejected_total 1',
      'workerpool_controller_backend_stats_errors_total 0',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('serves the autoscaler\'s desired, min and max for autoscaled pools only, and counts its decisions', async () => {
    const m = new ControllerMetrics({ defaultMetrics: false });
    m.attach(fakeSource());
    m.observer.onAutoscaled?.('up');
    m.observer.onAutoscaled?.('up');
    const text = await m.metrics();
    for (const line of [
      'workerpool_controller_autoscaling_desired_workers{pool_ulid="01POOL",namespace="team",name="pool-a"} 4',
      'workerpool_controller_autoscaling_min_workers{pool_ulid="01POOL",namespace="team",name="pool-a"} 1',
      'workerpool_controller_autoscaling_max_workers{pool_ulid="01POOL",namespace="team",name="pool-a"} 6',
      'workerpool_controller_autoscaling_decisions_total{direction="up"} 2',
      'workerpool_controller_autoscaling_decisions_total{direction="down"} 0',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).not.toContain('01FIXED');
  });

  it('serves each pool\'s desired, actual, busy and idle workers from its status, as kubectl get workerpools shows them', async () => {
    const m = new ControllerMetrics({ defaultMetrics: false });
    m.attach(
      fakeSource({
        pools: () => [
          {
            apiVersion: 'workers.spacelift.io/v1beta1',
            kind: 'WorkerPool',
            metadata: { name: 'ci', namespace: 'team' },
            spec: { poolSize: 3 },
            status: { poolId: '01CI', desiredPoolSize: 3, actualPoolSize: 2, busyWorkers: 1, idleWorkers: 1 },
          },
          // Credentials not usable yet: no pool id, no actual size.
          { apiVersion: 'workers.spacelift.io/v1beta1', kind: 'WorkerPool', metadata: { name: 'new', namespace: 'team' }, spec: { poolSize: 1 }, status: { desiredPoolSize: 1 } },
        ],
      }),
    );
    const text = await m.metrics();
    for (const line of [
      'workerpool_controller_pool_desired_workers{pool_ulid="01CI",namespace="team",name="ci"} 3',
      'workerpool_controller_pool_actual_workers{pool_ulid="01CI",namespace="team",name="ci"} 2',
      'workerpool_controller_pool_busy_workers{pool_ulid="01CI",namespace="team",name="ci"} 1',
      'workerpool_controller_pool_idle_workers{pool_ulid="01CI",namespace="team",name="ci"} 1',
      'workerpool_controller_pool_desired_workers{pool_ulid="",namespace="team",name="new"} 1',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).not.toContain('workerpool_controller_pool_actual_workers{pool_ulid="",namespace="team",name="new"}');
  });

  it('a backend error leaves that pool out, counts it, and does not fail the scrape', async () => {
    const m = new ControllerMetrics({ defaultMetrics: false });
    m.attach(fakeSource({ backendClients: () => new Map([['ns/p', { poolStats: () => Promise.reject(new Error('refused')) }]]) }));
    const text = await m.metrics();
    expect(text).not.toMatch(/^spacelift_worker_pool_workers\{/m);
    expect(text).toContain('workerpool_controller_backend_stats_errors_total 1');
    expect(text).toContain('spacelift_workerpool_controller_worker_total{pool_ulid="01POOL"} 2');
  });

  it('a standby serves no per-pool series, and reconnects never go back across leaderships', async () => {
    const m = new ControllerMetrics({ defaultMetrics: false });
    expect(await m.metrics()).not.toContain('pool_ulid=');
    const first = fakeSource();
    first.reconnects = 3;
    m.attach(first);
    expect(await m.metrics()).toContain('workerpool_controller_mqtt_reconnects_total 3');
    m.attach(undefined);
    const text = await m.metrics();
    expect(text).toContain('workerpool_controller_mqtt_reconnects_total 3');
    expect(text).toContain('workerpool_controller_mqtt_sessions 0');
    expect(text).not.toContain('pool_ulid=');
    const second = fakeSource();
    second.reconnects = 1;
    m.attach(second);
    expect(await m.metrics()).toContain('workerpool_controller_mqtt_reconnects_total 4');
  });
});
