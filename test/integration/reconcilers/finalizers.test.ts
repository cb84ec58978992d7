/**
 * Every finalizer path, in-process: the pool's (workers deregistered first),
 * the Worker's (deregistration, with a run in progress, with the backend
 * failing, with broken credentials) and the run Pod's (held until its end is
 * reported: deleted by a user, stopped by the backend, left by its Worker).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINALIZER_RUN_POD, FINALIZER_WORKER, FINALIZER_WORKERPOOL } from '../../../src/api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { removeFinalizer } from '../../../src/runtime/finalizers.js';
import { PODS, SECRETS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-final') });
  await c.start();
});
afterAll(async () => {
  c?.backend.deregistrationFails.clear();
  await c?.stop();
});

const idle = async (pool: string, n: number): Promise<WorkerObject[]> => {
  await eventually(`${n} idle workers of ${pool}`, async () => (await c.workers(pool)).filter((w) => w.status?.state === 'Idle').length === n);
  return c.workers(pool);
};
const registeredCondition = (w: WorkerObject | undefined) => w?.status?.conditions?.find((cond) => cond.type === 'Registered');

describe('the WorkerPool finalizer', () => {
  it('is added, and on deletion holds the pool until every worker is deregistered and its Secret gone', async () => {
    await c.createPool('gone', 2, poolCredentials('01hfinalpoolgoneaaaaaaaaaa'));
    const workers = await idle('gone', 2);
    expect((await c.pool('gone'))?.metadata.finalizers).toEqual([FINALIZER_WORKERPOOL]);
    for (const w of workers) expect(w.metadata.finalizers).toEqual([FINALIZER_WORKER]);

    await c.admin.delete(WORKERPOOL_REF, c.ns, 'gone');
    await eventually('the pool gone', async () => (await c.pool('gone')) === undefined);
    for (const w of workers) {
      expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(true);
      expect(await ignoreNotFound(c.admin.get(SECRETS, c.ns, w.metadata.name ?? ''))).toBeUndefined();
    }
    expect(await c.workers('gone')).toEqual([]);
  });
});

describe('the WorkerPool finalizer, with a worker the backend cannot let go', () => {
  it('keeps the pool Deleting and says which worker holds it and why', async () => {
    await c.createPool('holds', 1, poolCredentials('01hfinalholdsaaaaaaaaaaaaa'));
    const [w] = await idle('holds', 1);
    if (w === undefined) throw new Error('no worker');
    c.backend.deregistrationFails.add(w.spec.workerId);
    await c.admin.delete(WORKERPOOL_REF, c.ns, 'holds');
    await eventually('the pool Deleting, naming the cause', async () => {
      const ready = (await c.pool('holds'))?.status?.conditions?.find((cond) => cond.type === 'Ready');
      return ready?.reason === 'Deleting' && /waiting for 1 worker\(s\) to deregister from the backend: .*database is locked/.test(ready.message);
    });
    expect((await c.pool('holds'))?.metadata.finalizers).toEqual([FINALIZER_WORKERPOOL]);
    c.backend.deregistrationFails.delete(w.spec.workerId);
    await eventually('the pool gone', async () => (await c.pool('holds')) === undefined, 40_000);
  });
});

describe('the Worker finalizer', () => {
  it('waits for the run in progress, then deregisters', async () => {
    await c.createPool('waits', 1, poolCredentials('01hfinalwaitsaaaaaaaaaaaaa'));
    const [w] = await idle('waits', 1);
    if (w === undefined) throw new Error('no worker');
    await c.backend.schedule(w.spec.workerId, 'run-waits-1');
    await c.admin.delete(WORKER_REF, c.ns, w.metadata.name ?? '');
    await eventually('the worker waiting for its run', async () => registeredCondition((await c.workers('waits')).find((x) => x.metadata.name === w.metadata.name))?.reason === 'WaitingForRun');
    const waiting = (await c.workers('waits')).find((x) => x.metadata.name === w.metadata.name);
    expect(waiting?.status?.state).toBe('Draining');
    expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(false);

    await c.deletePod(runPodName('run-waits-1'));
    await eventually('the worker deregistered and gone', async () => (await c.workers('waits')).every((x) => x.metadata.name !== w.metadata.name));
    expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(true);
    expect(c.backend.statusesOf('run-waits-1').at(-1)).toBe('failed');
  });

  it('keeps a Worker the backend cannot deregister, says why, and lets it go once the backend answers', async () => {
    await c.createPool('stuck', 1, poolCredentials('01hfinalstuckaaaaaaaaaaaaa'));
    const [w] = await idle('stuck', 1);
    if (w === undefined) throw new Error('no worker');
    c.backend.deregistrationFails.add(w.spec.workerId);
    await c.admin.delete(WORKER_REF, c.ns, w.metadata.name ?? '');
    await eventually('the Registered condition names the failure', async () => {
      const cond = registeredCondition((await c.workers('stuck')).find((x) => x.metadata.name === w.metadata.name));
      return cond?.reason === 'BackendUnreachable' && /database is locked/.test(cond.message);
    });
    c.backend.deregistrationFails.delete(w.spec.workerId);
    await eventually('the worker gone', async () => (await c.workers('stuck')).every((x) => x.metadata.name !== w.metadata.name), 40_000);
    expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(true);
  });

  it('keeps a Worker whose pool credentials are broken, with CannotDeregister, until they are fixed', async () => {
    const creds = poolCredentials('01hfinalbrokenaaaaaaaaaaaa');
    await c.createPool('broken', 1, creds);
    const [w] = await idle('broken', 1);
    if (w === undefined) throw new Error('no worker');
    await c.admin.mergePatch(SECRETS, c.ns, 'broken-credentials', { data: { token: Buffer.from('not a token').toString('base64') } });
    await c.admin.delete(WORKER_REF, c.ns, w.metadata.name ?? '');
    await eventually('CannotDeregister', async () => registeredCondition((await c.workers('broken'))[0])?.reason === 'CannotDeregister');
    expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(false);

    await c.admin.mergePatch(SECRETS, c.ns, 'broken-credentials', { data: { token: Buffer.from(creds.token).toString('base64') } });
    // The pool replaces the Worker that was deleted; the deleted one leaves once it is deregistered.
    await eventually('the deleted worker gone', async () => (await c.workers('broken')).every((x) => x.metadata.name !== w.metadata.name), 40_000);
    expect(c.backend.workers.get(w.spec.workerId)?.deregistered).toBe(true);
  });
});

describe('the run Pod finalizer', () => {
  it('holds a Pod deleted by a user until its failure is reported, naming the deletion', async () => {
    await c.createPool('userdel', 1, poolCredentials('01hfinaluserdelaaaaaaaaaaa'));
    const [w] = await idle('userdel', 1);
    if (w === undefined) throw new Error('no worker');
    await c.backend.schedule(w.spec.workerId, 'run-userdel-1');
    const pod = await c.admin.get(PODS, c.ns, runPodName('run-userdel-1'));
    expect(pod.metadata?.finalizers).toEqual([FINALIZER_RUN_POD]);

    await c.deletePod(runPodName('run-userdel-1'));
    await eventually('the Pod released and gone', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-userdel-1')))) === undefined);
    const failed = c.backend.statuses.find((s) => s.runId === 'run-userdel-1' && s.status === 'failed');
    expect(failed?.reason).toMatch(/deleted before the run ended/);
    await eventually('the worker idle again', async () => (await c.workers('userdel'))[0]?.status?.state === 'Idle');
  });

  it('stops a run on the backend\'s request: the Pod is deleted and its end reported as stopped', async () => {
    await c.createPool('stopped', 1, poolCredentials('01hfinalstoppedaaaaaaaaaaa'));
    const [w] = await idle('stopped', 1);
    if (w === undefined) throw new Error('no worker');
    await c.backend.schedule(w.spec.workerId, 'run-stopped-1');
    await eventually('the run Pod in the cache', async () => c.running.ctx.caches.pods.get(c.ns, runPodName('run-stopped-1')) !== undefined);
    await c.backend.stop(w.spec.workerId, 'run-stopped-1');
    await eventually('the Pod gone', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-stopped-1')))) === undefined);
    expect(c.backend.statusesOf('run-stopped-1').at(-1)).toBe('stopped');
  });

  it('removes the run Pods of a Worker that is gone', async () => {
    await c.createPool('orphan', 1, poolCredentials('01hfinalorphanaaaaaaaaaaaa'));
    const [w] = await idle('orphan', 1);
    if (w === undefined) throw new Error('no worker');
    await c.backend.schedule(w.spec.workerId, 'run-orphan-1');
    // The Worker disappears behind the controller's back (finalizer removed by hand).
    await c.stop();
    const live = await c.admin.get(WORKER_REF, c.ns, w.metadata.name ?? '');
    await removeFinalizer(c.admin, WORKER_REF, live, FINALIZER_WORKER);
    await c.admin.mergePatch(WORKERPOOL_REF, c.ns, 'orphan', { spec: { poolSize: 0 } });
    await ignoreNotFound(c.admin.delete(WORKER_REF, c.ns, w.metadata.name ?? ''));
    await c.start();
    await eventually('the orphaned run Pod gone', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-orphan-1')))) === undefined);
  });
});
