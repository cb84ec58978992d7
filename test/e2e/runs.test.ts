/**
 * Scheduled runs become run Pods whose fate reaches the backend (issue 6).
 * There is no kubelet: the tests write Pod status as one would.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PODS, type Pod } from '../../src/runtime/k8s-client.js';
import type { Pool } from '../integration/backend-harness.js';
import { kubectlOk } from '../setup/cluster-access.js';
import { endedStatus, runningStatus, startE2E, waitFor, type E2E } from './harness.js';

let e2e: E2E;
let pool: Pool;
let keepPool: Pool;

beforeAll(async () => {
  e2e = await startE2E('e2e-runs');
  e2e.startController(['--stuck-pod-grace=3s']);
  pool = await e2e.createWorkerPool('runs', 2, {
    // The launcher image the backend chooses (public.ecr.aws by default) is checked too.
    allowedRunnerImageHosts: ['registry.example.com', 'public.ecr.aws'],
    pod: {
      activeDeadlineSeconds: 4200,
      labels: { team: 'platform' },
      annotations: { 'example.com/owner': 'ci' },
      nodeSelector: { pool: 'runners' },
      workerContainer: { resources: { limits: { memory: '2Gi' } }, env: [{ name: 'HTTPS_PROXY', value: 'http://proxy:3128' }] },
    },
  });
  keepPool = await e2e.createWorkerPool('keep', 1, { keepSuccessfulPods: true });
  await waitFor('the pools to be ready', async () => (await e2e.pool('runs')).status?.idleWorkers === 2 && (await e2e.pool('keep')).status?.idleWorkers === 1, 90_000);
});
afterAll(async () => {
  await e2e?.close();
});

const IMAGE = 'registry.example.com/runner:1.2';

async function podOfRun(runId: string): Promise<Pod> {
  return waitFor(`the pod of run ${runId}`, async () => (await e2e.pods(`workers.spacelift.io/run-id=${runId}`))[0]);
}

async function runState(runId: string, state: string): Promise<{ state: string; reason: string | null }> {
  return waitFor(`run ${runId} to be ${state}`, async () => {
    const run = await e2e.run(runId);
    return run.state === state ? run : undefined;
  }, 60_000);
}

async function gone(name: string): Promise<boolean> {
  return (await e2e.pods()).every((p) => p.metadata?.name !== name);
}

describe('a run', () => {
  test('gets one Pod with the documented containers, labels, owner and volumes, and its end reaches the backend', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: IMAGE, env: { TF_VAR_x: '1' } });
    const pod = await podOfRun(runId);
    const worker = (await e2e.workers()).find((w) => w.spec.workerId === pod.metadata?.labels?.['workers.spacelift.io/worker']);
    expect(worker).toBeDefined();
    expect(pod.metadata?.name).toBe(`${runId.toLowerCase()}-run-1`);
    expect(pod.metadata?.labels).toMatchObject({
      'workers.spacelift.io/run-id': runId,
      'workers.spacelift.io/worker': worker?.spec.workerId,
      'workers.spacelift.io/workerpool': pool.id,
      team: 'platform',
    });
    expect(pod.metadata?.annotations).toMatchObject({ 'example.com/owner': 'ci' });
    expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Worker', name: worker?.metadata.name, controller: true })]);
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['init', 'launcher-grpc']);
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(['worker']);
    const workerContainer = pod.spec?.containers[0];
    expect(workerContainer?.image).toBe(IMAGE);
    expect(workerContainer?.resources?.limits).toEqual({ memory: '2Gi' });
    expect(workerContainer?.env).toEqual(expect.arrayContaining([{ name: 'TF_VAR_x', value: '1' }, { name: 'HTTPS_PROXY', value: 'http://proxy:3128' }]));
    expect(workerContainer?.volumeMounts).toEqual(expect.arrayContaining([
      expect.objectContaining({ mountPath: '/opt/spacelift/workspace' }),
      expect.objectContaining({ mountPath: '/opt/spacelift/binaries_cache' }),
    ]));
    expect(pod.spec?.activeDeadlineSeconds).toBe(4200);
    expect(pod.spec?.nodeSelector).toEqual({ pool: 'runners' });
    expect(pod.spec?.securityContext).toMatchObject({ runAsUser: 1983, runAsGroup: 1983, runAsNonRoot: true });

    // Found by the documented selectors.
    expect(await kubectlOk(['get', 'pods', '-n', e2e.namespace, '-l', `workers.spacelift.io/run-id=${runId}`, '-o', 'name'])).toContain(pod.metadata?.name);
    expect(await kubectlOk(['get', 'pods', '-n', e2e.namespace, '-l', `workers.spacelift.io/worker=${worker?.spec.workerId}`, '-o', 'name'])).toContain(pod.metadata?.name);

    await waitFor('the worker to be Busy with the run', async () => {
      const w = (await e2e.workers()).find((x) => x.metadata.name === worker?.metadata.name);
      return w?.status?.state === 'Busy' && w.status.currentRunID === runId;
    });
    await e2e.setPodStatus(pod.metadata?.name ?? '', runningStatus());
    await runState(runId, 'running');
    await e2e.setPodStatus(pod.metadata?.name ?? '', endedStatus(0));
    await runState(runId, 'finished');
    await waitFor('the successful pod to be deleted', () => gone(pod.metadata?.name ?? ''));
    await waitFor('the worker to be Idle again', async () => {
      const w = (await e2e.workers()).find((x) => x.metadata.name === worker?.metadata.name);
      return w?.status?.state === 'Idle' && w.status.currentRunID === undefined;
    });
  });

  test('with keepSuccessfulPods the successful Pod stays', async () => {
    const runId = await e2e.submitRun(keepPool.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    await e2e.setPodStatus(pod.metadata?.name ?? '', endedStatus(0));
    await runState(runId, 'finished');
    await waitFor('the finalizer to be released', async () => (await podOfRun(runId)).metadata?.finalizers === undefined);
    expect(await gone(pod.metadata?.name ?? '')).toBe(false);
  });

  test('a failed run is reported with its exit code, and its Pod is kept', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    await e2e.setPodStatus(pod.metadata?.name ?? '', runningStatus());
    await e2e.setPodStatus(pod.metadata?.name ?? '', endedStatus(3));
    const run = await runState(runId, 'failed');
    expect(run.reason).toContain('exited with code 3');
    await waitFor('the finalizer to be released', async () => (await podOfRun(runId)).metadata?.finalizers === undefined);
    expect(await gone(pod.metadata?.name ?? '')).toBe(false);
  });

  test('a stop request stops the Pod and reports stopped', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    await e2e.setPodStatus(pod.metadata?.name ?? '', runningStatus());
    await runState(runId, 'running');
    const res = await e2e.env.admin('POST', `/api/runs/${runId}/stop`);
    expect(res.status).toBeLessThan(300);
    await runState(runId, 'stopped');
    await waitFor('the stopped pod to be gone', () => gone(pod.metadata?.name ?? ''));
  });

  test('a runner image from a host that is not allowed fails the run without a Pod', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: 'docker.io/library/evil:latest' });
    const run = await runState(runId, 'failed');
    expect(run.reason).toContain('docker.io');
    expect(await e2e.pods(`workers.spacelift.io/run-id=${runId}`)).toEqual([]);
  });

  test('a Pod stuck in ImagePullBackOff past the grace fails the run with that reason', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: 'registry.example.com/missing:0' });
    const pod = await podOfRun(runId);
    const now = new Date().toISOString();
    await e2e.setPodStatus(pod.metadata?.name ?? '', {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now }],
      initContainerStatuses: [
        { name: 'init', ready: false, restartCount: 0, image: 'launcher', imageID: '', state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now } } },
        { name: 'launcher-grpc', ready: true, restartCount: 0, image: 'launcher', imageID: '', started: true, state: { running: { startedAt: now } } },
      ],
      containerStatuses: [{ name: 'worker', ready: false, restartCount: 0, image: 'registry.example.com/missing:0', imageID: '', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "registry.example.com/missing:0"' } } }],
    });
    const run = await runState(runId, 'failed');
    expect(run.reason).toContain('ImagePullBackOff');
    await waitFor('the stuck pod to be removed', () => gone(pod.metadata?.name ?? ''));
  });
});

describe('scale-down and lost pods', () => {
  test('a busy worker survives kubectl scale to 0 until its run ends, then goes away', async () => {
    const shrink = await e2e.createWorkerPool('shrink', 1);
    await waitFor('an idle worker', async () => (await e2e.pool('shrink')).status?.idleWorkers === 1, 60_000);
    const runId = await e2e.submitRun(shrink.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    await e2e.setPodStatus(pod.metadata?.name ?? '', runningStatus());
    await runState(runId, 'running');

    await kubectlOk(['scale', 'workerpools', 'shrink', '-n', e2e.namespace, '--replicas=0']);
    await waitFor('the worker to be Draining', async () => (await e2e.workers()).find((w) => w.spec.poolName === 'shrink')?.status?.state === 'Draining');
    await new Promise((r) => setTimeout(r, 2000));
    expect((await e2e.workers()).filter((w) => w.spec.poolName === 'shrink')).toHaveLength(1);
    expect(await gone(pod.metadata?.name ?? '')).toBe(false);
    expect((await e2e.run(runId)).state).toBe('running');

    await e2e.setPodStatus(pod.metadata?.name ?? '', endedStatus(0));
    await runState(runId, 'finished');
    await waitFor('the worker to go away', async () => (await e2e.workers()).every((w) => w.spec.poolName !== 'shrink'), 60_000);
    expect((await e2e.backendPool(shrink.id)).workers).toEqual([]);
  }, 120_000);

  test('a run Pod deleted by hand fails its run and frees the worker', async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    await e2e.setPodStatus(pod.metadata?.name ?? '', runningStatus());
    await runState(runId, 'running');
    await kubectlOk(['delete', 'pod', pod.metadata?.name ?? '', '-n', e2e.namespace, '--wait=false']);
    const run = await runState(runId, 'failed');
    expect(run.reason).toContain('deleted before the run ended');
    await waitFor('the pod to be gone', () => gone(pod.metadata?.name ?? ''));
    await waitFor('no busy worker left', async () => (await e2e.pool('runs')).status?.busyWorkers === 0);
  });

  test('a run Pod removed while no controller ran (its finalizer stripped by hand) fails its run from the Worker record', { timeout: 120_000 }, async () => {
    const runId = await e2e.submitRun(pool.id, { runnerImage: IMAGE });
    const pod = await podOfRun(runId);
    const name = pod.metadata?.name ?? '';
    await e2e.setPodStatus(name, runningStatus());
    await runState(runId, 'running');
    const worker = await waitFor('the Worker to record the run', async () => (await e2e.workers()).find((w) => w.status?.currentRunID === runId));
    // With a controller running, the Pod's DELETED event names the run; without one, only the Worker's record does.
    await e2e.controller.kill('SIGKILL');
    await kubectlOk(['patch', 'pod', name, '-n', e2e.namespace, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    await kubectlOk(['delete', 'pod', name, '-n', e2e.namespace, '--grace-period=0', '--force']);
    e2e.startController();
    const run = await runState(runId, 'failed');
    expect(run.reason).toBe('the run Pod disappeared before its end was reported');
    await waitFor('the worker to be free again', async () => {
      const w = (await e2e.workers()).find((x) => x.metadata.name === worker.metadata.name);
      return w?.status?.state === 'Idle' && w.status.currentRunID === undefined;
    });
    await waitFor('no busy worker left', async () => (await e2e.pool('runs')).status?.busyWorkers === 0);
  });
});

test('a run Pod whose Worker is gone is cleaned up', async () => {
  const name = 'orphan-run-1';
  await e2e.client.create(PODS, e2e.namespace, {
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'kube-workerpool-controller', 'workers.spacelift.io/run-id': 'orphan', 'workers.spacelift.io/worker': 'ghost' },
      finalizers: ['workers.spacelift.io/report-run'],
      ownerReferences: [{ apiVersion: 'workers.spacelift.io/v1beta1', kind: 'Worker', name: 'runs-ghost', uid: '11111111-2222-3333-4444-555555555555' }],
    },
    spec: { containers: [{ name: 'worker', image: 'registry.example.com/r:1' }] },
  });
  await waitFor('the orphan to be removed', () => gone(name), 60_000);
});
