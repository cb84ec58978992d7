import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, test } from 'vitest';
import {
  classifyRunPod,
  disruptionOf,
  stuckVerdict,
  withRecentEvents,
  type ContainerStatusView,
  type PodConditionView,
  type RunPodView,
} from '../../src/controller/runs/pod-status.js';

const NOW = new Date('2026-01-01T12:00:00Z');
const T = (min: number): string => new Date(NOW.getTime() + min * 60_000).toISOString();
const SPEC = {
  initContainers: [
    { name: 'init', image: 'l' },
    { name: 'launcher-grpc', image: 'l', restartPolicy: 'Always' },
    { name: 'dind', image: 'd', restartPolicy: 'Always' },
  ],
  containers: [{ name: 'worker', image: 'r' }],
};

function pod(status: {
  phase?: string;
  reason?: string;
  message?: string;
  startTime?: string;
  conditions?: PodConditionView[];
  init?: ContainerStatusView[];
  worker?: ContainerStatusView['state'];
  workerLast?: ContainerStatusView['lastState'];
  /** Regular containers a webhook added beside `worker` (a mesh proxy); the kubelet lists them by name. */
  injected?: ContainerStatusView[];
}): RunPodView {
  const p: {
    metadata: { creationTimestamp: string };
    spec: typeof SPEC;
    status: Record<string, unknown>;
  } = { metadata: { creationTimestamp: T(-30) }, spec: SPEC, status: {} };
  const s = p.status;
  if (status.phase !== undefined) s.phase = status.phase;
  if (status.reason !== undefined) s.reason = status.reason;
  if (status.message !== undefined) s.message = status.message;
  s.startTime = status.startTime ?? T(-20);
  if (status.conditions) s.conditions = status.conditions;
  if (status.init) s.initContainerStatuses = status.init;
  if (status.worker || status.injected) {
    const worker: ContainerStatusView[] = status.worker ? [{ name: 'worker', state: status.worker, lastState: status.workerLast }] : [];
    s.containerStatuses = [...(status.injected ?? []), ...worker];
  }
  return p as RunPodView;
}

const initDone: ContainerStatusView = { name: 'init', state: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: T(-15) } } };
const grpcUp: ContainerStatusView = { name: 'launcher-grpc', state: { running: { startedAt: T(-14) } } };
const dindUp: ContainerStatusView = { name: 'dind', state: { running: { startedAt: T(-13) } } };

describe('classifyRunPod: outcomes', () => {
  test('succeeded with exit code 0 and finish time', () => {
    const s = classifyRunPod(
      pod({ phase: 'Succeeded', init: [initDone], worker: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: T(-1) } } }),
      NOW,
    );
    expect(s).toEqual({ phase: 'succeeded', exitCode: 0, finishedAt: new Date(T(-1)) });
  });

  test('worker exit code 2: failed with the code and reason', () => {
    const s = classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 2, reason: 'Error', finishedAt: T(-2) } } }), NOW);
    expect(s.phase).toBe('failed');
    expect(s.exitCode).toBe(2);
    expect(s.reason).toBe('worker container exited with code 2 (Error)');
    expect(s.finishedAt).toEqual(new Date(T(-2)));
  });

  test('termination message is appended, clipped', () => {
    const s = classifyRunPod(
      pod({ phase: 'Failed', worker: { terminated: { exitCode: 1, reason: 'Error', message: `terraform failed\n${'x'.repeat(1000)}` } } }),
      NOW,
    );
    expect(s.reason).toMatch(/^worker container exited with code 1 \(Error\): terraform failed x+\.\.\.$/);
    expect((s.reason ?? '').length).toBeLessThan(400);
  });

  test('OOMKilled is spelled out', () => {
    const s = classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }), NOW);
    expect(s.reason).toBe('worker container ran out of memory (OOMKilled, exit code 137)');
    expect(s.exitCode).toBe(137);
  });

  test('DeadlineExceeded names the deadline first, then the worker', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Failed',
        reason: 'DeadlineExceeded',
        message: 'Pod was active on the node longer than the specified deadline',
        worker: { terminated: { exitCode: 137, reason: 'Error' } },
      }),
      NOW,
    );
    expect(s.reason).toBe(
      "run exceeded the Pod's deadline (activeDeadlineSeconds, DeadlineExceeded): Pod was active on the node longer than the specified deadline; worker container exited with code 137 (Error)",
    );
    expect(s.exitCode).toBe(137);
  });

  test('Evicted', () => {
    const s = classifyRunPod(pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }), NOW);
    expect(s).toMatchObject({ phase: 'failed', reason: 'Pod was evicted (Evicted): The node was low on resource: memory.' });
    expect(s.exitCode).toBeUndefined();
  });

  test('other kubelet reasons and bare failures', () => {
    expect(classifyRunPod(pod({ phase: 'Failed', reason: 'NodeAffinity', message: 'Predicate NodeAffinity failed' }), NOW).reason).toBe(
      'Pod failed (NodeAffinity): Predicate NodeAffinity failed',
    );
    expect(classifyRunPod(pod({ phase: 'Failed' }), NOW).reason).toBe('Pod failed');
  });

  test('worker terminated while the Pod still reports Running (sidecars stopping): outcome known', () => {
    const ok = classifyRunPod(pod({ phase: 'Running', init: [initDone, grpcUp], worker: { terminated: { exitCode: 0, finishedAt: T(0) } } }), NOW);
    expect(ok.phase).toBe('succeeded');
    const bad = classifyRunPod(pod({ phase: 'Running', init: [initDone, grpcUp], worker: { terminated: { exitCode: 3, reason: 'Error' } } }), NOW);
    expect(bad).toMatchObject({ phase: 'failed', exitCode: 3, reason: 'worker container exited with code 3 (Error)' });
  });

  test('a failed init container fails the run at once (restartPolicy Never)', () => {
    const s = classifyRunPod(
      pod({ phase: 'Pending', init: [{ name: 'init', state: { terminated: { exitCode: 1, reason: 'Error', finishedAt: T(-3) } } }], worker: { waiting: { reason: 'PodInitializing' } } }),
      NOW,
    );
    expect(s).toMatchObject({ phase: 'failed', reason: 'init container "init" exited with code 1 (Error)' });
    expect(s.exitCode).toBeUndefined();
    expect(s.finishedAt).toEqual(new Date(T(-3)));
  });

  test('a sidecar that exited non-zero is not a failed init container', () => {
    const s = classifyRunPod(
      pod({ phase: 'Running', init: [initDone, { name: 'launcher-grpc', state: { terminated: { exitCode: 1 } } }], worker: { running: {} } }),
      NOW,
    );
    expect(s.phase).toBe('running');
  });

  test('running and plain pending', () => {
    expect(classifyRunPod(pod({ phase: 'Running', init: [initDone, grpcUp], worker: { running: { startedAt: T(-1) } } }), NOW)).toEqual({ phase: 'running' });
    expect(classifyRunPod(pod({ phase: 'Pending' }), NOW)).toEqual({ phase: 'pending' });
    expect(classifyRunPod({}, NOW)).toEqual({ phase: 'pending' });
  });

  test('client-node models with Date fields are accepted', () => {
    const p: V1Pod = {
      spec: { containers: [{ name: 'worker' }] },
      status: {
        phase: 'Failed',
        containerStatuses: [
          { name: 'worker', image: 'r', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 4, finishedAt: new Date(T(-5)) } } },
        ],
      },
    };
    expect(classifyRunPod(p, NOW)).toMatchObject({ phase: 'failed', exitCode: 4, finishedAt: new Date(T(-5)) });
  });

  test('a Succeeded Pod whose worker status is gone: succeeded with exit code 0, and no end time it does not know', () => {
    expect(classifyRunPod(pod({ phase: 'Succeeded' }), NOW)).toStrictEqual({ phase: 'succeeded', exitCode: 0 });
    expect(classifyRunPod(pod({ phase: 'Failed' }), NOW)).toStrictEqual({ phase: 'failed', reason: 'Pod failed' });
  });

  test('a missing or empty termination reason and a blank termination message are left out', () => {
    expect(classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 4 } } }), NOW).reason).toBe('worker container exited with code 4');
    expect(classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 4, reason: '', message: ' \n ' } } }), NOW).reason).toBe(
      'worker container exited with code 4',
    );
    expect(classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 137, reason: 'OOMKilled', message: '\n' } } }), NOW).reason).toBe(
      'worker container ran out of memory (OOMKilled, exit code 137)',
    );
  });

  test('a termination message is trimmed and each run of whitespace becomes one space', () => {
    const s = classifyRunPod(
      pod({ phase: 'Failed', worker: { terminated: { exitCode: 1, reason: 'Error', message: '\nError: apply failed\n\n  on main.tf line 3\n' } } }),
      NOW,
    );
    expect(s.reason).toBe('worker container exited with code 1 (Error): Error: apply failed on main.tf line 3');
  });

  test('a message of 300 characters is kept whole; a longer one is cut to 300 ending in "..."', () => {
    const prefix = 'worker container exited with code 1 (Error): ';
    const detail = (message: string): string | undefined =>
      classifyRunPod(pod({ phase: 'Failed', worker: { terminated: { exitCode: 1, reason: 'Error', message } } }), NOW).reason?.slice(prefix.length);
    expect(detail('x'.repeat(300))).toBe('x'.repeat(300));
    expect(detail('x'.repeat(301))).toBe(`${'x'.repeat(297)}...`);
  });

  test('a Pod-level reason with a blank or no message, and a Pod message without a reason', () => {
    expect(classifyRunPod(pod({ phase: 'Failed', reason: 'Evicted', message: '  ' }), NOW).reason).toBe('Pod was evicted (Evicted)');
    expect(classifyRunPod(pod({ phase: 'Failed', reason: 'NodeShutdown' }), NOW).reason).toBe('Pod failed (NodeShutdown)');
    expect(classifyRunPod(pod({ phase: 'Failed', reason: '', message: 'Pod was rejected by the node' }), NOW).reason).toBe(
      'Pod failed: Pod was rejected by the node',
    );
    expect(classifyRunPod(pod({ phase: 'Failed', message: ' \n' }), NOW).reason).toBe('Pod failed');
  });

  test('the run ended when worker did, not when the sidecars were stopped after it', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Succeeded',
        init: [initDone, { name: 'launcher-grpc', state: { terminated: { exitCode: 0, finishedAt: T(-1) } } }],
        worker: { terminated: { exitCode: 0, reason: 'Completed', finishedAt: T(-2) } },
      }),
      NOW,
    );
    expect(s.finishedAt).toEqual(new Date(T(-2)));
  });

  test('without a worker end time: the latest container end, else the latest condition change', () => {
    // The deadline passed while worker still waited; the kubelet stopped the sidecars in reverse order, then marked the Pod not ready.
    const deadline = classifyRunPod(
      pod({
        phase: 'Failed',
        reason: 'DeadlineExceeded',
        conditions: [{ type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: T(0) }],
        init: [
          initDone,
          { name: 'launcher-grpc', state: { terminated: { exitCode: 137, finishedAt: T(-2) } } },
          { name: 'dind', state: { terminated: { exitCode: 137, finishedAt: T(-5) } } },
        ],
        worker: { waiting: { reason: 'ContainerCreating' } },
      }),
      NOW,
    );
    expect(deadline.finishedAt).toEqual(new Date(T(-2)));
    // Evicted before any container ran: only the conditions carry times.
    const evicted = classifyRunPod(
      pod({
        phase: 'Failed',
        reason: 'Evicted',
        conditions: [
          { type: 'PodScheduled', status: 'True', lastTransitionTime: T(-20) },
          { type: 'Ready', status: 'False', lastTransitionTime: T(-3) },
          { type: 'Initialized', status: 'False', lastTransitionTime: T(-10) },
        ],
      }),
      NOW,
    );
    expect(evicted.finishedAt).toEqual(new Date(T(-3)));
  });

  test('a container injected beside worker (a mesh proxy, listed first) does not stand in for it', () => {
    const proxy: ContainerStatusView = { name: 'istio-proxy', state: { running: { startedAt: T(-14) } } };
    const s = classifyRunPod(pod({ phase: 'Running', init: [initDone, grpcUp], injected: [proxy], worker: { terminated: { exitCode: 2, reason: 'Error' } } }), NOW);
    expect(s).toMatchObject({ phase: 'failed', exitCode: 2, reason: 'worker container exited with code 2 (Error)' });
  });
});

describe('classifyRunPod: cannot start', () => {
  test('worker ImagePullBackOff: since init completed', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        conditions: [{ type: 'Initialized', status: 'True', lastTransitionTime: T(-12) }],
        init: [initDone, grpcUp, dindUp],
        worker: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "r"' } },
      }),
      NOW,
    );
    expect(s.phase).toBe('pending');
    expect(s.cannotStart).toMatchObject({ reason: 'ImagePullBackOff', container: 'worker', initContainer: false, message: 'Back-off pulling image "r"', sinceKnown: true });
    expect(s.stuckSince).toEqual(new Date(T(-12)));
  });

  test.each(['ErrImagePull', 'CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName'])('worker %s', (reason) => {
    const s = classifyRunPod(pod({ phase: 'Pending', worker: { waiting: { reason, message: 'm' } } }), NOW);
    expect(s.cannotStart?.reason).toBe(reason);
    // No Initialized=True: the Pod's start time.
    expect(s.stuckSince).toEqual(new Date(T(-20)));
  });

  test('ContainerCreating and PodInitializing are not stuck', () => {
    expect(classifyRunPod(pod({ phase: 'Pending', worker: { waiting: { reason: 'ContainerCreating' } } }), NOW).cannotStart).toBeUndefined();
    expect(classifyRunPod(pod({ phase: 'Pending', worker: { waiting: { reason: 'PodInitializing' } } }), NOW).cannotStart).toBeUndefined();
  });

  test('init container image pull failure: since the previous step ended', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        init: [initDone, { name: 'launcher-grpc', state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }],
        worker: { waiting: { reason: 'PodInitializing' } },
      }),
      NOW,
    );
    expect(s.cannotStart).toMatchObject({ reason: 'ErrImagePull', container: 'launcher-grpc', initContainer: true });
    expect(s.stuckSince).toEqual(new Date(T(-15)));
  });

  test('the first init container: since the Pod started', () => {
    const s = classifyRunPod(pod({ phase: 'Pending', init: [{ name: 'init', state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "vcs" not found' } } }] }), NOW);
    expect(s.cannotStart).toMatchObject({ reason: 'CreateContainerConfigError', container: 'init', message: 'secret "vcs" not found' });
    expect(s.stuckSince).toEqual(new Date(T(-20)));
  });

  test('sidecar crash loop before the worker started, with the last exit code', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        init: [initDone, { name: 'launcher-grpc', restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s' } }, lastState: { terminated: { exitCode: 1 } } }],
      }),
      NOW,
    );
    expect(s.cannotStart).toMatchObject({ reason: 'CrashLoopBackOff', container: 'launcher-grpc', lastExitCode: 1 });
  });

  test('init statuses are read in spec order', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        init: [
          { name: 'dind', state: { waiting: { reason: 'ErrImagePull' } } },
          { name: 'launcher-grpc', state: { waiting: { reason: 'ImagePullBackOff' } } },
          initDone,
        ],
      }),
      NOW,
    );
    expect(s.cannotStart?.container).toBe('launcher-grpc');
    expect(s.stuckSince).toEqual(new Date(T(-15)));
  });

  test('unschedulable: since the condition changed', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.', lastTransitionTime: T(-7) }],
      }),
      NOW,
    );
    expect(s.cannotStart).toMatchObject({ reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.', sinceKnown: true });
    expect(s.cannotStart?.container).toBeUndefined();
    expect(s.stuckSince).toEqual(new Date(T(-7)));
  });

  test('unschedulable with no message and no timestamps: an empty message, the caller’s now, flagged unknown', () => {
    const s = classifyRunPod({ status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] } }, NOW);
    expect(s.cannotStart).toStrictEqual({ reason: 'Unschedulable', message: '', since: NOW, sinceKnown: false });
  });

  test('PodScheduled=False for another reason (scheduling gates) is not unschedulable', () => {
    const s = classifyRunPod(
      pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'SchedulingGated', message: 'Scheduling is blocked due to non-empty scheduling gates', lastTransitionTime: T(-7) }] }),
      NOW,
    );
    expect(s).toEqual({ phase: 'pending' });
  });

  test('a waiting worker with no message and no earlier crash: exactly what is known', () => {
    const s = classifyRunPod(
      pod({ phase: 'Pending', conditions: [{ type: 'Initialized', status: 'True', lastTransitionTime: T(-12) }], init: [initDone, grpcUp, dindUp], worker: { waiting: { reason: 'ImagePullBackOff' } } }),
      NOW,
    );
    expect(s.cannotStart).toStrictEqual({ reason: 'ImagePullBackOff', container: 'worker', initContainer: false, message: '', since: new Date(T(-12)), sinceKnown: true });
  });

  test('an init container after one with no recorded time: since the Pod started', () => {
    const s = classifyRunPod(
      pod({
        phase: 'Pending',
        init: [{ name: 'init', state: { terminated: { exitCode: 0 } } }, { name: 'launcher-grpc', state: { waiting: { reason: 'ErrImagePull' } } }],
      }),
      NOW,
    );
    expect(s.cannotStart).toMatchObject({ container: 'launcher-grpc', sinceKnown: true });
    expect(s.stuckSince).toEqual(new Date(T(-20)));
  });

  test('no timestamps at all: the caller’s now, flagged unknown', () => {
    const s = classifyRunPod({ status: { phase: 'Pending', containerStatuses: [{ name: 'worker', state: { waiting: { reason: 'ImagePullBackOff' } } }] } }, NOW);
    expect(s.stuckSince).toEqual(NOW);
    expect(s.cannotStart?.sinceKnown).toBe(false);
  });

  test('a running worker is never stuck, even if a sidecar crash-loops', () => {
    const s = classifyRunPod(
      pod({ phase: 'Running', init: [initDone, { name: 'launcher-grpc', state: { waiting: { reason: 'CrashLoopBackOff' } } }], worker: { running: {} } }),
      NOW,
    );
    expect(s).toEqual({ phase: 'running' });
  });
});

describe('stuckVerdict', () => {
  const pulling = pod({
    phase: 'Pending',
    conditions: [{ type: 'Initialized', status: 'True', lastTransitionTime: T(-4) }],
    worker: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "r"' } },
  });

  test('within the grace: not yet, with when to look again', () => {
    expect(stuckVerdict(pulling, NOW, 5 * 60_000)).toEqual({ fail: false, recheckAfterMs: 60_000 });
  });

  test('past the grace: fail with the reason and how long', () => {
    const v = stuckVerdict(pulling, NOW, 3 * 60_000);
    expect(v.fail).toBe(true);
    if (!v.fail) return;
    expect(v.reason).toBe('worker container cannot start (ImagePullBackOff) for 4m0s: Back-off pulling image "r"');
    expect(v.cannotStart.reason).toBe('ImagePullBackOff');
  });

  test('exactly at the grace: fail', () => {
    expect(stuckVerdict(pulling, NOW, 4 * 60_000).fail).toBe(true);
  });

  test('InvalidImageName fails at once', () => {
    const v = stuckVerdict(pod({ phase: 'Pending', worker: { waiting: { reason: 'InvalidImageName', message: 'bad' } } }), new Date(T(-20)), 600_000);
    expect(v).toMatchObject({ fail: true, reason: 'worker container cannot start (InvalidImageName) for 0s: bad' });
  });

  test('unschedulable and crash-looping sidecar wording', () => {
    const u = stuckVerdict(
      pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no nodes', lastTransitionTime: T(-10) }] }),
      NOW,
      60_000,
    );
    expect(u).toMatchObject({ fail: true, reason: 'run Pod cannot be scheduled (Unschedulable) for 10m0s: no nodes' });
    const c = stuckVerdict(
      pod({ phase: 'Pending', init: [initDone, { name: 'launcher-grpc', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } }, lastState: { terminated: { exitCode: 2 } } }] }),
      NOW,
      60_000,
    );
    expect(c).toMatchObject({ fail: true, reason: 'init container "launcher-grpc" keeps crashing (CrashLoopBackOff, last exit code 2) for 15m0s: back-off' });
  });

  test('without a message or a last exit code the reason ends at the duration', () => {
    const noMessage = pod({ phase: 'Pending', conditions: [{ type: 'Initialized', status: 'True', lastTransitionTime: T(-4) }], worker: { waiting: { reason: 'ImagePullBackOff' } } });
    expect(stuckVerdict(noMessage, NOW, 60_000)).toMatchObject({ fail: true, reason: 'worker container cannot start (ImagePullBackOff) for 4m0s' });
    const unschedulable = pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', lastTransitionTime: T(-10) }] });
    expect(stuckVerdict(unschedulable, NOW, 60_000)).toMatchObject({ fail: true, reason: 'run Pod cannot be scheduled (Unschedulable) for 10m0s' });
    const firstCrash = pod({ phase: 'Pending', init: [initDone, { name: 'launcher-grpc', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off' } } }] });
    expect(stuckVerdict(firstCrash, NOW, 60_000)).toMatchObject({ fail: true, reason: 'init container "launcher-grpc" keeps crashing (CrashLoopBackOff) for 15m0s: back-off' });
  });

  test('a regular container other than worker is named as a container', () => {
    const p = pod({
      phase: 'Pending',
      conditions: [{ type: 'Initialized', status: 'True', lastTransitionTime: T(-12) }],
      init: [initDone, grpcUp, dindUp],
      injected: [{ name: 'istio-proxy', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "proxy"' } } }],
      worker: { waiting: { reason: 'ContainerCreating' } },
    });
    expect(stuckVerdict(p, NOW, 60_000)).toMatchObject({ fail: true, reason: 'container "istio-proxy" cannot start (ImagePullBackOff) for 12m0s: Back-off pulling image "proxy"' });
  });

  test('running, finished and healthy pending pods are never stuck', () => {
    expect(stuckVerdict(pod({ phase: 'Running', worker: { running: {} } }), NOW, 0)).toEqual({ fail: false });
    expect(stuckVerdict(pod({ phase: 'Failed', worker: { terminated: { exitCode: 1 } } }), NOW, 0)).toEqual({ fail: false });
    expect(stuckVerdict(pod({ phase: 'Pending', worker: { waiting: { reason: 'ContainerCreating' } } }), NOW, 0)).toEqual({ fail: false });
  });
});

describe('withRecentEvents', () => {
  test('appends the last distinct events', () => {
    const r = withRecentEvents('worker container cannot start (ImagePullBackOff) for 5m0s', [
      { type: 'Normal', reason: 'Scheduled', message: 'assigned' },
      { type: 'Warning', reason: 'Failed', message: 'Failed to pull image "r": not found' },
      { type: 'Normal', reason: 'BackOff', message: 'Back-off pulling image "r"' },
      { type: 'Warning', reason: 'Failed', message: 'Failed to pull image "r": not found' },
    ], 2);
    expect(r).toBe(
      'worker container cannot start (ImagePullBackOff) for 5m0s; recent events: Normal BackOff: Back-off pulling image "r"; Warning Failed: Failed to pull image "r": not found',
    );
  });
  test('no events: reason unchanged', () => {
    expect(withRecentEvents('x', [])).toBe('x');
  });

  test('an event shows only the parts it has; an empty one is left out', () => {
    const r = withRecentEvents('x', [
      { type: 'Warning', message: 'no reason' },
      { type: 'Warning', reason: '', message: 'empty reason' },
      { type: 'Normal', reason: 'Pulled' },
      {},
    ]);
    expect(r).toBe('x; recent events: Warning: no reason; Warning: empty reason; Normal Pulled');
    expect(withRecentEvents('x', [{}, { type: '', reason: '', message: '' }])).toBe('x');
  });

  test('a repeated event is listed once, where it last happened', () => {
    const pulled = { type: 'Normal', reason: 'Pulled', message: 'image pulled' };
    const failed = { type: 'Warning', reason: 'Failed', message: 'Error: exit 1' };
    expect(withRecentEvents('x', [pulled, failed, pulled])).toBe('x; recent events: Warning Failed: Error: exit 1; Normal Pulled: image pulled');
    expect(withRecentEvents('x', [failed, pulled, failed, pulled], 5)).toBe('x; recent events: Warning Failed: Error: exit 1; Normal Pulled: image pulled');
  });
});

describe('disruptionOf', () => {
  test('names an eviction through the Eviction API (kubectl drain)', () => {
    const p = pod({
      phase: 'Running',
      conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' }],
      init: [initDone, grpcUp],
      worker: { running: { startedAt: T(-10) } },
    });
    expect(disruptionOf(p)).toBe('the run Pod was evicted before the run ended (EvictionByEvictionAPI: Eviction API: evicting)');
  });

  test('names a preemption or a node-pressure eviction by its reason', () => {
    expect(disruptionOf(pod({ conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }] }))).toBe(
      'the run Pod was evicted before the run ended (TerminationByKubelet)',
    );
  });

  test('is undefined without the condition, or with it False (a plain kubectl delete pod)', () => {
    expect(disruptionOf(pod({ phase: 'Running' }))).toBeUndefined();
    expect(disruptionOf(pod({ conditions: [{ type: 'DisruptionTarget', status: 'False', reason: 'EvictionByEvictionAPI' }] }))).toBeUndefined();
  });

  test('is undefined for a healthy Pod whose other conditions are all True', () => {
    const conditions: PodConditionView[] = [
      { type: 'PodScheduled', status: 'True' },
      { type: 'Initialized', status: 'True' },
      { type: 'Ready', status: 'True', reason: 'PodReady' },
    ];
    expect(disruptionOf(pod({ phase: 'Running', conditions }))).toBeUndefined();
  });

  test('without a reason, or with an empty one and a blank message, names the condition only', () => {
    expect(disruptionOf(pod({ conditions: [{ type: 'DisruptionTarget', status: 'True' }] }))).toBe('the run Pod was evicted before the run ended (DisruptionTarget)');
    expect(disruptionOf(pod({ conditions: [{ type: 'DisruptionTarget', status: 'True', reason: '', message: ' \n' }] }))).toBe(
      'the run Pod was evicted before the run ended (DisruptionTarget)',
    );
  });
});
