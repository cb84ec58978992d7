/**
 * Scheduled runs become run Pods that really run on the node (issues 6 and
 * 14): the kubelet starts `init`, the `launcher-grpc` sidecar and `worker`
 * from the stand-in images, and what they do reaches the backend. Each test
 * asserts what the backend and kubectl show. Nothing here writes a Pod's
 * status: the kubelet does.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LABEL_RUN_ID, LABEL_WORKERPOOL } from '../../src/api/constants.js';
import { WORKER_REF } from '../../src/api/types.js';
import { PODS, SECRETS, type Pod } from '../../src/runtime/k8s-client.js';
import type { Pool } from '../integration/backend-harness.js';
import { kubectl, kubectlOk, skipWithout, testNode } from '../setup/cluster-access.js';
import { startE2E, waitFor, WAITING_SCRIPT, type E2E, type RunView } from './harness.js';
import { ObjectWatch } from './object-watch.js';

const node = testNode();

describe.skipIf(skipWithout('the node', node !== null))('runs on the node', () => {
  let e2e: E2E;
  let pool: Pool;
  let keepPool: Pool;
  let deadlinePool: Pool;
  const launcher = node?.images.standinLauncher.ref ?? '';
  const runner = node?.images.standinRunner.ref ?? '';

  beforeAll(async () => {
    e2e = await startE2E('e2e-runs');
    e2e.startController(['--stuck-pod-grace=3s']);
    pool = await e2e.createWorkerPool('runs', 2, {
      allowedRunnerImageHosts: ['localhost'],
      pod: {
        activeDeadlineSeconds: 4200,
        terminationGracePeriodSeconds: 20,
        labels: { team: 'platform' },
        annotations: { 'example.com/owner': 'ci' },
        nodeSelector: { 'kubernetes.io/hostname': node?.name ?? '' },
        workerContainer: { resources: { limits: { memory: '256Mi' } }, env: [{ name: 'HTTPS_PROXY', value: 'http://proxy:3128' }] },
      },
    });
    keepPool = await e2e.createWorkerPool('keep', 1, {
      keepSuccessfulPods: true,
      pod: {
        additionalSidecarContainers: [
          {
            name: 'extra',
            image: runner,
            command: ['sh', '-c', 'trap "echo extra stopped by TERM; exit 0" TERM; echo extra running; while :; do sleep 1 & wait $!; done'],
          },
        ],
      },
    });
    deadlinePool = await e2e.createWorkerPool('deadline', 1, { pod: { activeDeadlineSeconds: 3, terminationGracePeriodSeconds: 5 } });
    await waitFor(
      'the pools to be ready',
      async () => (await e2e.pool('runs')).status?.idleWorkers === 2 && (await e2e.pool('keep')).status?.idleWorkers === 1 && (await e2e.pool('deadline')).status?.idleWorkers === 1,
      90_000,
    );
  });
  afterAll(async () => {
    await e2e?.close();
  });

  async function podOfRun(runId: string): Promise<Pod> {
    return waitFor(`the pod of run ${runId}`, async () => (await e2e.pods(`${LABEL_RUN_ID}=${runId}`))[0]);
  }

  async function runState(runId: string, state: string, timeoutMs = 60_000): Promise<RunView> {
    return waitFor(`run ${runId} to be ${state}`, async () => {
      const run = await e2e.run(runId);
      if (['finished', 'failed', 'stopped'].includes(run.state) && run.state !== state) throw new Error(`run ${runId} ended ${run.state}: ${run.reason ?? ''}`);
      return run.state === state ? run : undefined;
    }, timeoutMs);
  }

  async function gone(name: string): Promise<boolean> {
    return (await e2e.pods()).every((p) => p.metadata?.name !== name);
  }

  /** `kubectl get pod` fields, as a user reads them. */
  async function podJson(name: string): Promise<Pod> {
    return JSON.parse(await kubectlOk(['get', 'pod', name, '-n', e2e.namespace, '-o', 'json'])) as Pod;
  }

  async function logs(name: string, container: string): Promise<string> {
    return kubectlOk(['logs', name, '-n', e2e.namespace, '-c', container]);
  }

  describe('a run', () => {
    test('whose worker exits 0: one Pod of the documented shape, scheduled onto the node, the run finished, the Pod deleted', async () => {
      const runId = await e2e.submitScriptRun(pool.id, 'echo "hello from run $SPACELIFT_RUN_ID"; exit 0', { env: { TF_VAR_x: '1' } });
      const pod = await podOfRun(runId);
      const name = pod.metadata?.name ?? '';
      const worker = (await e2e.workers()).find((w) => w.spec.workerId === pod.metadata?.labels?.['workers.spacelift.io/worker']);
      expect(worker).toBeDefined();
      expect(name).toBe(`${runId.toLowerCase()}-run-1`);
      expect(pod.metadata?.labels).toMatchObject({
        'workers.spacelift.io/run-id': runId,
        'workers.spacelift.io/worker': worker?.spec.workerId,
        'workers.spacelift.io/workerpool': pool.id,
        team: 'platform',
      });
      expect(pod.metadata?.annotations).toMatchObject({ 'example.com/owner': 'ci' });
      expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Worker', name: worker?.metadata.name, controller: true })]);
      expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['init', 'launcher-grpc']);
      expect(pod.spec?.initContainers?.map((c) => c.image)).toEqual([launcher, launcher]);
      expect(pod.spec?.containers.map((c) => c.name)).toEqual(['worker']);
      const workerContainer = pod.spec?.containers[0];
      expect(workerContainer?.image).toBe(runner);
      expect(workerContainer?.resources?.limits).toEqual({ memory: '256Mi' });
      expect(workerContainer?.env).toEqual(expect.arrayContaining([{ name: 'TF_VAR_x', value: '1' }, { name: 'HTTPS_PROXY', value: 'http://proxy:3128' }]));
      expect(pod.spec?.activeDeadlineSeconds).toBe(4200);
      expect(pod.spec?.nodeSelector).toEqual({ 'kubernetes.io/hostname': node?.name });
      expect(pod.spec?.securityContext).toMatchObject({ runAsUser: 1983, runAsGroup: 1983, runAsNonRoot: true });

      // The scheduler binds it to the node; found by the documented selectors.
      await waitFor('the pod to be scheduled', async () => (await e2e.pods(`${LABEL_RUN_ID}=${runId}`))[0]?.spec?.nodeName === node?.name);
      expect(await kubectlOk(['get', 'pods', '-n', e2e.namespace, '-l', `workers.spacelift.io/worker=${worker?.spec.workerId}`, '-o', 'name'])).toContain(name);

      await runState(runId, 'finished');
      await waitFor('the successful pod to be deleted', () => gone(name));
      await waitFor('the worker to be Idle again', async () => {
        const w = (await e2e.workers()).find((x) => x.metadata.name === worker?.metadata.name);
        return w?.status?.state === 'Idle' && w.status.currentRunID === undefined;
      });
    });

    test('whose worker exits 3: failed with the exit code; kubectl shows the Pod Failed, worker terminated with 3', async () => {
      const runId = await e2e.submitScriptRun(pool.id, 'echo "about to fail"; exit 3');
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      const run = await runState(runId, 'failed');
      expect(run.reason).toContain('worker container exited with code 3');
      expect(run.exitCode).toBe(3);
      await waitFor('the finalizer to be released', async () => (await podOfRun(runId)).metadata?.finalizers === undefined);
      // The run's end is known when worker exits; the Pod is Failed once the kubelet has stopped the sidecars.
      const pod = await waitFor('the Pod to be Failed', async () => {
        const p = await podJson(name);
        return p.status?.phase === 'Failed' ? p : undefined;
      });
      expect(pod.status?.containerStatuses?.find((c) => c.name === 'worker')?.state?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
      expect(await logs(name, 'worker')).toContain('about to fail');
    });

    test('init, launcher-grpc and worker share the workspace and the binaries cache; launcher-grpc and the additional sidecar stop after worker ends; the Pod is Succeeded', async () => {
      const script = 'cat /opt/spacelift/workspace/from-init /opt/spacelift/binaries_cache/from-init /opt/spacelift/workspace/from-launcher-grpc && sleep 1';
      const runId = await e2e.submitScriptRun(keepPool.id, script);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'finished');
      await waitFor('the Pod to be Succeeded', async () => (await podJson(name)).status?.phase === 'Succeeded');
      const pod = await podJson(name);
      // What init wrote, worker read: from the workspace and from the binaries cache.
      const workerLog = await logs(name, 'worker');
      expect(workerLog).toContain(`written by init for run ${runId}`);
      expect(workerLog).toContain(`cached by init for run ${runId}`);
      expect(workerLog).toContain('running');
      // The sidecars were stopped (SIGTERM) once worker had ended.
      const terminated = (c: string): { exitCode?: number; finishedAt?: string | Date } | undefined => pod.status?.initContainerStatuses?.find((s) => s.name === c)?.state?.terminated;
      const workerEnd = new Date(pod.status?.containerStatuses?.find((s) => s.name === 'worker')?.state?.terminated?.finishedAt ?? 0).getTime();
      for (const sidecar of ['launcher-grpc', 'extra']) {
        expect(terminated(sidecar)?.exitCode, sidecar).toBe(0);
        expect(new Date(terminated(sidecar)?.finishedAt ?? 0).getTime(), sidecar).toBeGreaterThanOrEqual(workerEnd);
      }
      expect(await logs(name, 'launcher-grpc')).toContain('launcher-grpc: stopped (TERM)');
      expect(await logs(name, 'extra')).toContain('extra stopped by TERM');
      expect(terminated('init')?.exitCode).toBe(0);
      expect(await gone(name)).toBe(false);
    });

    test('with a runner image that does not exist: the real ErrImagePull/ImagePullBackOff fails the run with that reason after --stuck-pod-grace, and the Pod goes', async () => {
      const missing = 'localhost/kwc-no-such-runner:1';
      const runId = await e2e.submitScriptRun(pool.id, 'exit 0', { runnerImage: missing });
      const pod = await podOfRun(runId);
      const name = pod.metadata?.name ?? '';
      const waiting = await waitFor('kubectl to show the pull failure', async () => {
        const reason = (await kubectl(['get', 'pod', name, '-n', e2e.namespace, '-o', 'jsonpath={.status.containerStatuses[0].state.waiting.reason}'])).stdout;
        return /^(ErrImagePull|ImagePullBackOff)$/.test(reason) ? reason : undefined;
      });
      expect(waiting).toMatch(/ErrImagePull|ImagePullBackOff/);
      const run = await runState(runId, 'failed');
      expect(run.reason).toMatch(/^worker container cannot start \((ErrImagePull|ImagePullBackOff)\) for \d+s/);
      expect(run.reason).toContain(missing);
      // Not before the grace: the Pod was created at least 3 s before the run failed.
      const created = new Date(pod.metadata?.creationTimestamp ?? 0).getTime();
      expect(new Date(run.updatedAt ?? 0).getTime() - created).toBeGreaterThanOrEqual(2_500);
      await waitFor('the stuck pod to be removed', () => gone(name));
    });

    test('past activeDeadlineSeconds: failed with DeadlineExceeded, and kubectl shows why', async () => {
      const runId = await e2e.submitScriptRun(deadlinePool.id, WAITING_SCRIPT);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      const run = await runState(runId, 'failed', 90_000);
      expect(run.reason).toContain('DeadlineExceeded');
      const pod = await podJson(name);
      expect(pod.status?.phase).toBe('Failed');
      expect(pod.status?.reason).toBe('DeadlineExceeded');
    });

    test('a stop gives the Pod its grace period: worker gets SIGTERM, finishes its cleanup, and the run is stopped', async () => {
      const events: { line: string; at: number }[] = [];
      const server: Server = createServer((socket) => {
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('end', () => {
          for (const line of text.split('\n').filter((l) => l !== '')) events.push({ line, at: Date.now() });
        });
      });
      await new Promise<void>((resolve) => server.listen(0, node?.address, resolve));
      const port = (server.address() as { port: number }).port;
      try {
        const say = (what: string): string => `echo "${what}" | nc -w 2 ${node?.address} ${port}`;
        const script = `trap '${say('got TERM')}; sleep 2; ${say('cleaned up')}; exit 0' TERM; ${say('started')}; while :; do sleep 0.2 & wait $!; done`;
        const runId = await e2e.submitScriptRun(pool.id, script);
        const name = (await podOfRun(runId)).metadata?.name ?? '';
        await waitFor('the worker to start', () => events.some((e) => e.line === 'started'), 60_000);
        await runState(runId, 'running');
        const res = await e2e.env.admin('POST', `/api/runs/${runId}/stop`);
        expect(res.status).toBeLessThan(300);
        // Terminating with the pool's grace period, not killed outright.
        const grace = await waitFor('the pod to be terminating', async () => (await e2e.pods(`${LABEL_RUN_ID}=${runId}`))[0]?.metadata?.deletionGracePeriodSeconds);
        expect(grace).toBe(20);
        await waitFor('the worker to finish its cleanup', () => events.some((e) => e.line === 'cleaned up'), 30_000);
        const term = events.find((e) => e.line === 'got TERM');
        const cleaned = events.find((e) => e.line === 'cleaned up');
        expect(term).toBeDefined();
        expect((cleaned?.at ?? 0) - (term?.at ?? 0)).toBeGreaterThanOrEqual(1_500);
        const run = await runState(runId, 'stopped');
        expect(run.state).toBe('stopped');
        await waitFor('the stopped pod to be gone', () => gone(name), 60_000);
      } finally {
        server.close();
      }
    });

    test('with a runner image from a host that is not allowed: failed without a Pod', async () => {
      const runId = await e2e.submitScriptRun(pool.id, 'exit 0', { runnerImage: 'docker.io/library/evil:latest' });
      const run = await runState(runId, 'failed');
      expect(run.reason).toContain('docker.io');
      expect(await e2e.pods(`${LABEL_RUN_ID}=${runId}`)).toEqual([]);
    });
  });

  describe('scale-down, lost pods, drains and deleted Workers', () => {
    test('a busy worker survives kubectl scale to 0 until its run ends, then goes away', async () => {
      const shrink = await e2e.createWorkerPool('shrink', 1);
      await waitFor('an idle worker', async () => (await e2e.pool('shrink')).status?.idleWorkers === 1, 60_000);
      const runId = await e2e.submitScriptRun(shrink.id, WAITING_SCRIPT);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'running');

      // Every change to the pool's Workers and to the run Pod from the scale-down to the run's end.
      const workers = await ObjectWatch.start(e2e.client, WORKER_REF, e2e.namespace, `${LABEL_WORKERPOOL}=${shrink.id}`);
      const pods = await ObjectWatch.start(e2e.client, PODS, e2e.namespace, `${LABEL_RUN_ID}=${runId}`);
      try {
        await kubectlOk(['scale', 'workerpools', 'shrink', '-n', e2e.namespace, '--replicas=0']);
        await waitFor('the worker to be Draining', async () => (await e2e.workers()).find((w) => w.spec.poolName === 'shrink')?.status?.state === 'Draining');
        // The scale-down is fully acted on: the status is of the new spec and the backend holds the worker drained.
        await waitFor('the pool status of the new spec', async () => {
          const p = await e2e.pool('shrink');
          return p.status?.observedGeneration === p.metadata.generation && p.status?.desiredPoolSize === 0;
        });
        await waitFor('the backend to hold the worker drained', async () => (await e2e.backendPool(shrink.id)).workers.every((w) => w.drained));
        expect((await e2e.run(runId)).state).toBe('running');
        const workerUids = workers.uids();
        expect(workerUids).toHaveLength(1);
        // Over the whole window so far: the Worker never marked for deletion, the Pod never stopped or deleted.
        expect(workers.events.filter((e) => e.type === 'deleted' || e.object.metadata?.deletionTimestamp !== undefined)).toEqual([]);
        expect(pods.uids()).toHaveLength(1);
        expect(pods.events.filter((e) => e.type === 'deleted' || e.object.metadata?.deletionTimestamp !== undefined || e.object.status?.phase !== 'Running')).toEqual([]);

        await e2e.endRun(name, 0);
      } finally {
        await workers.stop();
        await pods.stop();
      }
      await runState(runId, 'finished');
      await waitFor('the worker to go away', async () => (await e2e.workers()).every((w) => w.spec.poolName !== 'shrink'), 60_000);
      expect((await e2e.backendPool(shrink.id)).workers).toEqual([]);
    }, 120_000);

    test('a run Pod deleted by hand fails its run and frees the worker', async () => {
      const runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'running');
      await kubectlOk(['delete', 'pod', name, '-n', e2e.namespace, '--wait=false']);
      const run = await runState(runId, 'failed');
      expect(run.reason).toContain('deleted before the run ended');
      await waitFor('the pod to be gone', () => gone(name), 60_000);
      await waitFor('no busy worker left', async () => (await e2e.pool('runs')).status?.busyWorkers === 0);
    });

    test('kubectl drain of the node evicts a run Pod, and the run fails naming the eviction', async () => {
      const runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'running');
      let drained;
      try {
        // Only this run's Pod: other test files share the node.
        drained = await kubectl(['drain', node?.name ?? '', `--pod-selector=${LABEL_RUN_ID}=${runId}`, '--delete-emptydir-data', '--ignore-daemonsets', '--timeout=90s']);
      } finally {
        await kubectlOk(['uncordon', node?.name ?? '']);
      }
      expect(drained.code, drained.stderr).toBe(0);
      expect(drained.stdout + drained.stderr).toContain(`evicting pod ${e2e.namespace}/${name}`);
      const run = await runState(runId, 'failed');
      expect(run.reason).toMatch(/evict/i);
      expect(run.reason).toContain('EvictionByEvictionAPI');
      expect(await gone(name)).toBe(true);
      await waitFor('no busy worker left', async () => (await e2e.pool('runs')).status?.busyWorkers === 0);
    }, 120_000);

    test('a run Pod removed while no controller ran (its finalizer stripped by hand) fails its run from the Worker record', { timeout: 120_000 }, async () => {
      const runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'running');
      const worker = await waitFor('the Worker to record the run', async () => (await e2e.workers()).find((w) => w.status?.currentRunID === runId));
      // With a controller running, the Pod's DELETED event names the run; without one, only the Worker's record does.
      await e2e.controller.kill('SIGKILL');
      await kubectlOk(['patch', 'pod', name, '-n', e2e.namespace, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
      await kubectlOk(['delete', 'pod', name, '-n', e2e.namespace, '--grace-period=0', '--force']);
      e2e.startController(['--stuck-pod-grace=3s']);
      const run = await runState(runId, 'failed');
      expect(run.reason).toBe('the run Pod disappeared before its end was reported');
      await waitFor('the worker to be free again', async () => {
        const w = (await e2e.workers()).find((x) => x.metadata.name === worker.metadata.name);
        return w?.status?.state === 'Idle' && w.status.currentRunID === undefined;
      });
      await waitFor('no busy worker left', async () => (await e2e.pool('runs')).status?.busyWorkers === 0);
    });

    test('deleting a Worker garbage-collects what it owns (its Secret, its kept run Pods), even with no controller running', { timeout: 120_000 }, async () => {
      const runId = await e2e.submitScriptRun(keepPool.id, 'exit 0');
      const name = (await podOfRun(runId)).metadata?.name ?? '';
      await runState(runId, 'finished');
      await waitFor('the kept pod to be released', async () => (await podOfRun(runId)).metadata?.finalizers === undefined);
      const worker = (await e2e.workers()).find((w) => w.spec.poolName === 'keep');
      const workerName = worker?.metadata.name ?? '';
      expect(await e2e.client.get(SECRETS, e2e.namespace, workerName)).toBeDefined();

      // No controller: only the garbage collector can remove the Worker's dependents.
      await e2e.controller.kill('SIGKILL');
      await kubectlOk(['patch', 'worker', workerName, '-n', e2e.namespace, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
      await kubectlOk(['delete', 'worker', workerName, '-n', e2e.namespace]);
      await waitFor('the garbage collector to delete the Worker\'s run Pod', () => gone(name), 60_000);
      await waitFor('the garbage collector to delete the Worker\'s Secret', async () => (await e2e.client.list(SECRETS, e2e.namespace)).items.every((s) => s.metadata?.name !== workerName), 60_000);
      expect((await kubectl(['get', 'pod', name, '-n', e2e.namespace])).stderr).toContain('NotFound');
      e2e.startController(['--stuck-pod-grace=3s']);
      await waitFor('the pool to have its worker again', async () => (await e2e.pool('keep')).status?.idleWorkers === 1, 90_000);
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
      spec: {
        automountServiceAccountToken: false,
        securityContext: { runAsUser: 1983, runAsNonRoot: true },
        containers: [{ name: 'worker', image: runner, env: [{ name: 'KWC_STANDIN_SCRIPT', value: WAITING_SCRIPT }] }],
      },
    });
    await waitFor('the orphan to be removed', () => gone(name), 60_000);
  });
});
