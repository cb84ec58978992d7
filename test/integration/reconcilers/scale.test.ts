/**
 * The pool reconciler in-process: the scale plan with its expectations, idle
 * workers leaving first, busy workers drained and never killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_DRAINING } from '../../../src/api/constants.js';
import { WORKER_REF, type WorkerObject } from '../../../src/api/types.js';
import { objectKey } from '../../../src/controller/keys.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { SECRETS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials, Seen } from './harness.js';

let c: InProcessController;
let workersSeen: Seen<WorkerObject>;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-scale') });
  await c.start();
  workersSeen = await Seen.start(c.admin, WORKER_REF, c.ns);
});
afterAll(async () => {
  await workersSeen?.stop();
  await c?.stop();
});

const idOf = (w: WorkerObject): string => w.spec.workerId;
const registeredIdle = (ws: WorkerObject[]): WorkerObject[] => ws.filter((w) => w.status?.registered === true && w.status.state === 'Idle');

describe('scaling a pool', () => {
  it('makes exactly poolSize Workers, each registered once, each with its own key Secret, however often the pool is reconciled', async () => {
    await c.createPool('three', 3, poolCredentials('01hpoolscalethreeaaaaaaaaa'));
    // A storm of reconciles while the Workers are being created: expectations keep each from making more.
    const key = `${c.ns}/three`;
    for (let i = 0; i < 50; i++) {
      c.running.ctx.queues.pools.add(key);
      await new Promise((r) => setTimeout(r, 5));
    }
    await eventually('three registered idle workers', async () => registeredIdle(await c.workers('three')).length === 3);
    const workers = await c.workers('three');
    expect(workersSeen.names.filter((n) => n.startsWith('three-'))).toHaveLength(3);
    for (const w of workers) {
      expect(c.backend.workers.get(idOf(w))?.registrations).toBe(1);
      expect(w.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'WorkerPool', name: 'three', controller: true });
      const secret = await c.admin.get(SECRETS, c.ns, w.metadata.name ?? '');
      expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
      expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Worker', name: w.metadata.name, uid: w.metadata.uid });
    }
    await eventually('the pool Ready with 3 of 3', async () => {
      const pool = await c.pool('three');
      return pool?.status?.actualPoolSize === 3 && pool.status.conditions?.some((cond) => cond.type === 'Ready' && cond.status === 'True') === true;
    });
  });

  it('removes idle workers and drains a busy one, which stays until its run ends', async () => {
    await c.createPool('drain', 3, poolCredentials('01hpoolscaledrainaaaaaaaaa'));
    await eventually('three idle workers', async () => registeredIdle(await c.workers('drain')).length === 3);
    const [busy] = await c.workers('drain');
    if (busy === undefined) throw new Error('no worker');
    await c.backend.schedule(idOf(busy), 'run-drain-1');
    await eventually('the busy worker shows its run', async () => (await c.workers('drain')).find((w) => idOf(w) === idOf(busy))?.status?.state === 'Busy');

    await c.scale('drain', 0);
    await eventually('only the busy worker left, draining', async () => {
      const left = await c.workers('drain');
      return left.length === 1 && left[0]?.metadata.annotations?.[ANNOTATION_DRAINING] === 'true' && left[0].status?.state === 'Draining';
    });
    expect(c.backend.workers.get(idOf(busy))?.drained).toBe(true);
    const gone = [...c.backend.workers.values()].filter((w) => w.poolId === '01hpoolscaledrainaaaaaaaaa' && w.deregistered);
    expect(gone).toHaveLength(2);
    expect(gone.map((w) => w.id)).not.toContain(idOf(busy));
    expect((await c.pods()).map((p) => p.metadata?.name)).toContain(runPodName('run-drain-1'));

    // The run ends (its Pod is deleted): the drained worker leaves after reporting it.
    await c.deletePod(runPodName('run-drain-1'));
    await eventually('the drained worker gone', async () => (await c.workers('drain')).length === 0);
    expect(c.backend.statusesOf('run-drain-1')).toEqual(['accepted', 'pod-created', 'failed']);
    expect(c.backend.statuses.find((s) => s.runId === 'run-drain-1' && s.status === 'failed')?.reason).toMatch(/deleted before the run ended/);
    expect(c.backend.workers.get(idOf(busy))?.deregistered).toBe(true);
  });

  it('takes a draining worker back instead of creating a new one when the pool grows again', async () => {
    await c.createPool('back', 1, poolCredentials('01hpoolscalebackaaaaaaaaaa'));
    await eventually('one idle worker', async () => registeredIdle(await c.workers('back')).length === 1);
    const [only] = await c.workers('back');
    if (only === undefined) throw new Error('no worker');
    await c.backend.schedule(idOf(only), 'run-back-1');
    await c.scale('back', 0);
    await eventually('the busy worker draining', async () => (await c.workers('back'))[0]?.status?.state === 'Draining');

    await c.scale('back', 1);
    await eventually('the same worker undrained and busy again', async () => {
      const ws = await c.workers('back');
      return ws.length === 1 && ws[0]?.metadata.annotations?.[ANNOTATION_DRAINING] === undefined && ws[0].status?.state === 'Busy';
    });
    expect(c.backend.workers.get(idOf(only))?.drained).toBe(false);
    expect(workersSeen.names.filter((n) => n.startsWith('back-'))).toEqual([only.metadata.name]);
    expect(objectKey(only)).toBe(`${c.ns}/${only.metadata.name}`);
  });
});
