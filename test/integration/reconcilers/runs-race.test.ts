/**
 * The ordering invariant of the runs module (src/controller/runs/controller.ts):
 * a schedule for the next run, arriving at each step of the previous run's
 * end, is accepted and gets its Pod; nothing is failed by the controller's own
 * bookkeeping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerObject } from '../../../src/api/types.js';
import { syncRuns } from '../../../src/controller/runs/controller.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { PODS, type Pod } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace, testKubeConfig } from '../../setup/cluster-access.js';
import { FaultProxy } from './fault-proxy.js';
import { eventually, InProcessController, poolCredentials, Seen } from './harness.js';

let c: InProcessController;
let proxy: FaultProxy;
let podsSeen: Seen<Pod>;

beforeAll(async () => {
  proxy = await FaultProxy.start(testKubeConfig());
  c = new InProcessController({ namespace: await createTestNamespace('rec-race'), proxy });
  await c.start();
  podsSeen = await Seen.start(c.admin, PODS, c.ns);
});
afterAll(async () => {
  c.backend.onStatus = undefined;
  await podsSeen?.stop();
  await c?.stop();
  await proxy?.close();
});

let pools = 0;
/** A worker busy with run `previous`, whose Pod the cache shows. */
async function busyWorker(previous: string): Promise<WorkerObject> {
  const pool = `race${++pools}`;
  await c.createPool(pool, 1, poolCredentials(`01hrace${String(pools).padStart(2, '0')}aaaaaaaaaaaaaaaaa`));
  await eventually(`an idle worker of ${pool}`, async () => (await c.workers(pool))[0]?.status?.state === 'Idle');
  const [w] = await c.workers(pool);
  if (w === undefined) throw new Error('no worker');
  await c.backend.schedule(w.spec.workerId, previous);
  await eventually('the run Pod in the cache', () => c.running.ctx.caches.pods.get(c.ns, runPodName(previous)) !== undefined);
  return w;
}

/** The next run got exactly one Pod and was accepted, never failed; the worker is busy with it. */
async function expectNextRunStarted(w: WorkerObject, previous: string, next: string): Promise<void> {
  await eventually('the next run accepted', () => c.backend.statusesOf(next).includes('accepted'));
  expect(c.backend.statusesOf(next)).not.toContain('failed');
  await eventually('the next run\'s Pod seen', () => podsSeen.uidsByName.has(runPodName(next)));
  expect(podsSeen.uidsByName.get(runPodName(next))?.size).toBe(1);
  await eventually('the previous run reported failed', () => c.backend.statusesOf(previous).includes('failed'));
  await eventually('the worker busy with the next run', async () => {
    const now = (await c.workers()).find((x) => x.metadata.name === w.metadata.name);
    return now?.status?.state === 'Busy' && now.status.currentRunID === next;
  });
  const announced = c.backend.states.filter((s) => s.workerId === w.spec.workerId).at(-1);
  expect(announced).toMatchObject({ state: 'busy', runId: next });
}

const endWrite = (run: string): RegExp => new RegExp(`^PATCH /api/v1/namespaces/[^/]+/pods/${runPodName(run)}$`);

describe('a schedule racing the end of the worker\'s previous run', () => {
  it('is accepted when it arrives before the end is sent (a restarted controller, the end not written yet)', async () => {
    const w = await busyWorker('race-a1');
    const hold = proxy.holdWrite(endWrite('race-a1'));
    await c.deletePod(runPodName('race-a1'));
    await hold.reached;
    // The controller dies between sending the end and writing it.
    await c.stop();
    hold.drop();
    c.backend.disconnect(w.spec.workerId);
    await c.start();
    await eventually('the worker\'s session opened again', () => c.backend.sessionOf(w.spec.workerId) !== undefined);
    // The backend, which has the end, sends the next run as soon as the worker is back.
    const next = c.backend.schedule(w.spec.workerId, 'race-a2');
    c.backend.connect(w.spec.workerId);
    await next;
    await expectNextRunStarted(w, 'race-a1', 'race-a2');
  });

  it('is accepted when it arrives while the end is being sent, before the broker acknowledged it', async () => {
    const w = await busyWorker('race-b1');
    c.backend.onStatus = async (s) => {
      if (s.runId === 'race-b1' && s.status === 'failed') {
        c.backend.onStatus = undefined;
        await c.backend.schedule(w.spec.workerId, 'race-b2');
      }
    };
    await c.deletePod(runPodName('race-b1'));
    await expectNextRunStarted(w, 'race-b1', 'race-b2');
    expect(c.backend.statusesOf('race-b1').filter((s) => s === 'failed')).toHaveLength(1);
  });

  it('is accepted when it arrives after the end is acknowledged, while it is being written to the Pod', async () => {
    const w = await busyWorker('race-c1');
    const hold = proxy.holdWrite(endWrite('race-c1'));
    await c.deletePod(runPodName('race-c1'));
    await hold.reached;
    await c.backend.schedule(w.spec.workerId, 'race-c2');
    hold.release();
    await expectNextRunStarted(w, 'race-c1', 'race-c2');
    expect(c.backend.statusesOf('race-c1').filter((s) => s === 'failed')).toHaveLength(1);
  });

  it('is accepted when it arrives after the end is written, before the cache shows it', async () => {
    const w = await busyWorker('race-d1');
    const hold = proxy.holdWrite(endWrite('race-d1'));
    await c.deletePod(runPodName('race-d1'));
    await hold.reached;
    const events = proxy.holdWatchEvents();
    hold.release();
    await eventually('the end written (the Pod released and gone)', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('race-d1')))) === undefined);
    expect(c.running.ctx.caches.pods.get(c.ns, runPodName('race-d1'))?.metadata?.finalizers?.length).toBe(1);
    await c.backend.schedule(w.spec.workerId, 'race-d2');
    events.release();
    await expectNextRunStarted(w, 'race-d1', 'race-d2');
    expect(c.backend.statusesOf('race-d1').filter((s) => s === 'failed')).toHaveLength(1);
  });

  it('is accepted once the cache shows the end', async () => {
    const w = await busyWorker('race-e1');
    await c.deletePod(runPodName('race-e1'));
    await eventually('the cache without the Pod', () => c.running.ctx.caches.pods.get(c.ns, runPodName('race-e1')) === undefined);
    await c.backend.schedule(w.spec.workerId, 'race-e2');
    await expectNextRunStarted(w, 'race-e1', 'race-e2');
    expect(c.backend.statusesOf('race-e1').filter((s) => s === 'failed')).toHaveLength(1);
  });

  it('costs one write to the Pod to record a run\'s end, and no conflict', async () => {
    await busyWorker('race-f1');
    await c.deletePod(runPodName('race-f1'));
    await eventually('the Pod gone', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('race-f1')))) === undefined);
    const writes = proxy.writes.filter((x) => x.key.includes(`/pods/${runPodName('race-f1')}`));
    expect(writes).toEqual([{ key: expect.stringMatching(/^POST /) as unknown as string, status: 201 }, { key: expect.stringMatching(/^PATCH /) as unknown as string, status: 200 }]);
  });
});

describe('a Worker status that lags behind the run Pods', () => {
  it('does not make the run just reported look vanished (no second failure)', async () => {
    const w = await busyWorker('race-g1');
    await eventually('the Worker status names the run', async () => (await c.workers()).find((x) => x.metadata.name === w.metadata.name)?.status?.currentRunID === 'race-g1');
    const stale = (await c.workers()).find((x) => x.metadata.name === w.metadata.name);
    if (stale === undefined) throw new Error('no worker');
    await c.deletePod(runPodName('race-g1'));
    await eventually('the Pod gone from the cache', () => c.running.ctx.caches.pods.get(c.ns, runPodName('race-g1')) === undefined);
    const pool = c.running.ctx.caches.pools.get(c.ns, stale.spec.poolName);
    if (pool === undefined) throw new Error('no pool');
    // A reconcile reading a Worker status written before the run ended.
    const runs = await syncRuns(c.running.ctx, stale, pool);
    expect(runs.activeRunId).toBeUndefined();
    expect(c.backend.statusesOf('race-g1').filter((s) => s === 'failed')).toHaveLength(1);
  });
});

describe('over the whole file', () => {
  it('no run ever had two Pods', () => {
    expect(podsSeen.count).toBeGreaterThan(10);
    expect([...podsSeen.uidsByName].filter(([, uids]) => uids.size !== 1)).toEqual([]);
  });
});
