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
  if (status.worker) s.containerStatuses = [{ name: 'worker', state: status.worker, lastState: status.workerLast }];
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
    expect(s.cannotStart).toMatchObject({ reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' });
    expect(s.cannotStart?.container).toBeUndefined();
    expect(s.stuckSince).toEqual(new Date(T(-7)));
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
});
