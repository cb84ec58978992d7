/**
 * Runs in-process: one Pod per run however often the schedule arrives, a
 * busy worker refusing a second run, and the vanished-run branch (a run Pod
 * gone without its end reported).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_REF, type WorkerObject } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { PODS, type Pod } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials, Seen } from './harness.js';

let c: InProcessController;
let podsSeen: Seen<Pod>;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-runs') });
  await c.start();
  podsSeen = await Seen.start(c.admin, PODS, c.ns);
});
afterAll(async () => {
  c.backend.acksWithheld = false;
  await podsSeen?.stop();
  await c?.stop();
});

async function oneIdleWorker(pool: string, poolId: string): Promise<WorkerObject> {
  await c.createPool(pool, 1, poolCredentials(poolId));
  await eventually(`an idle worker of ${pool}`, async () => (await c.workers(pool))[0]?.status?.state === 'Idle');
  const [w] = await c.workers(pool);
  if (w === undefined) throw new Error('no worker');
  return w;
}

describe('a scheduled run', () => {
  it('gets one Pod however many times its schedule is delivered, and is accepted each time', async () => {
    const w = await oneIdleWorker('dup', '01hrunsdupaaaaaaaaaaaaaaaa');
    await Promise.all([c.backend.schedule(w.spec.workerId, 'run-dup-1'), c.backend.schedule(w.spec.workerId, 'run-dup-1')]);
    await c.backend.schedule(w.spec.workerId, 'run-dup-1');
    await eventually('the Worker busy with the run', async () => (await c.workers('dup'))[0]?.status?.currentRunID === 'run-dup-1');
    await eventually('the Pod seen', () => podsSeen.uidsByName.has(runPodName('run-dup-1')));
    expect(podsSeen.uidsByName.get(runPodName('run-dup-1'))?.size).toBe(1);
    expect(c.backend.statusesOf('run-dup-1').filter((s) => s === 'accepted')).toHaveLength(3);
  });

  it('is not accepted, and never failed, while the worker runs another run; sent again after that run ends, it starts', async () => {
    const w = await oneIdleWorker('busy', '01hrunsbusyaaaaaaaaaaaaaaa');
    await c.backend.schedule(w.spec.workerId, 'run-busy-1');
    await eventually('the first run Pod in the cache', async () => c.running.ctx.caches.pods.get(c.ns, runPodName('run-busy-1')) !== undefined);
    await c.backend.schedule(w.spec.workerId, 'run-busy-2');
    expect(c.backend.statusesOf('run-busy-2')).toEqual([]);
    expect(podsSeen.uidsByName.has(runPodName('run-busy-2'))).toBe(false);
    expect(c.logs.lines.some((l) => l.includes('schedule not accepted') && l.includes('run-busy-1'))).toBe(true);

    await c.deletePod(runPodName('run-busy-1'));
    await eventually('the first run reported failed', () => c.backend.statusesOf('run-busy-1').includes('failed'));
    // The backend sends the schedule again (the reference backend does at once when the worker turns idle).
    await c.backend.schedule(w.spec.workerId, 'run-busy-2');
    expect(c.backend.statusesOf('run-busy-2')).toEqual(['accepted']);
    await eventually('its Pod seen', () => podsSeen.uidsByName.has(runPodName('run-busy-2')));
    expect(podsSeen.uidsByName.get(runPodName('run-busy-2'))?.size).toBe(1);
  });
});

describe('a run whose Pod vanished while no controller ran', () => {
  it('is reported failed once the controller is back, and the worker is idle again', async () => {
    const w = await oneIdleWorker('vanish', '01hrunsvanishaaaaaaaaaaaaa');
    await c.backend.schedule(w.spec.workerId, 'run-vanish-1');
    await eventually('the Worker records the run', async () => (await c.workers('vanish'))[0]?.status?.currentRunID === 'run-vanish-1');
    await c.stop();
    await c.vanishPod(runPodName('run-vanish-1'));
    await c.start();
    await eventually('the run reported failed', async () => c.backend.statusesOf('run-vanish-1').includes('failed'));
    expect(c.backend.statuses.find((s) => s.runId === 'run-vanish-1' && s.status === 'failed')?.reason).toBe('the run Pod disappeared before its end was reported');
    await eventually('the worker idle', async () => {
      const now = (await c.workers('vanish'))[0];
      return now?.status?.state === 'Idle' && now.status.currentRunID === undefined;
    });
  });

  it('keeps the worker busy with that run while its session is down, and reports it when the session is back', async () => {
    const w = await oneIdleWorker('offline', '01hrunsofflineaaaaaaaaaaaa');
    await c.backend.schedule(w.spec.workerId, 'run-offline-1');
    await eventually('the Worker records the run', async () => (await c.workers('offline'))[0]?.status?.currentRunID === 'run-offline-1');
    await c.stop();
    await c.vanishPod(runPodName('run-offline-1'));
    c.backend.disconnect(w.spec.workerId);
    await c.start();
    // Reconciled with the session down: no report possible, so the worker must not claim to be idle.
    await eventually('a reconcile of the worker', () => c.logs.lines.some((l) => l.includes('"queue":"worker"')) || c.running.ctx.sessions.has(`${c.ns}/${w.metadata.name}`));
    const announced = c.backend.states.filter((s) => s.workerId === w.spec.workerId).at(-1);
    expect(c.backend.statusesOf('run-offline-1')).not.toContain('failed');
    expect((await c.workers('offline'))[0]?.status?.currentRunID).toBe('run-offline-1');
    expect(announced?.state).not.toBe('idle');

    c.backend.connect(w.spec.workerId);
    await eventually('the run reported failed', async () => c.backend.statusesOf('run-offline-1').includes('failed'));
    await eventually('the worker idle', async () => (await c.workers('offline'))[0]?.status?.state === 'Idle');
  });
});

describe('a worker that disappears between schedule and accepted', () => {
  it('(controller killed after the Pod was made) has the run accepted by the next controller, with the same single Pod', async () => {
    const w = await oneIdleWorker('killed', '01hrunskilledaaaaaaaaaaaaa');
    c.backend.acksWithheld = true;
    const first = c.backend.schedule(w.spec.workerId, 'run-killed-1').catch(() => undefined);
    await eventually('the run Pod made', () => podsSeen.uidsByName.has(runPodName('run-killed-1')));
    await c.stop();
    await first;
    expect(c.backend.statusesOf('run-killed-1')).toEqual([]);
    c.backend.acksWithheld = false;
    await c.start();
    await eventually('the worker\'s session back', () => c.backend.sessionOf(w.spec.workerId) !== undefined);
    // The broker redelivers what was not acknowledged (the backend would send it again too).
    await c.backend.schedule(w.spec.workerId, 'run-killed-1');
    // Accepted (the new controller may report the Pod's progress first, from its own reconcile).
    expect(c.backend.statusesOf('run-killed-1')).toContain('accepted');
    expect(c.backend.statusesOf('run-killed-1')).not.toContain('failed');
    await eventually('the Pod seen', () => podsSeen.uidsByName.has(runPodName('run-killed-1')));
    expect(podsSeen.uidsByName.get(runPodName('run-killed-1'))?.size).toBe(1);
  });

  it('(session dropped) accepts the run once the session is back', async () => {
    const w = await oneIdleWorker('dropped', '01hrunsdroppedaaaaaaaaaaaa');
    c.backend.disconnect(w.spec.workerId);
    const scheduled = c.backend.schedule(w.spec.workerId, 'run-dropped-1');
    await eventually('the run Pod made', () => podsSeen.uidsByName.has(runPodName('run-dropped-1')));
    expect(c.backend.statusesOf('run-dropped-1')).toEqual([]);
    c.backend.connect(w.spec.workerId);
    await scheduled;
    expect(c.backend.statusesOf('run-dropped-1')[0]).toBe('accepted');
    expect(podsSeen.uidsByName.get(runPodName('run-dropped-1'))?.size).toBe(1);
  });

  it('(Worker being deleted) neither accepts nor fails the run and makes no Pod, so deregistration queues it again', async () => {
    const w = await oneIdleWorker('leaving', '01hrunsleavingaaaaaaaaaaaa');
    c.backend.deregistrationFails.add(w.spec.workerId);
    await c.admin.delete(WORKER_REF, c.ns, w.metadata.name ?? '');
    await eventually('the Worker deleting in the cache', () => c.running.ctx.caches.workers.get(c.ns, w.metadata.name ?? '')?.metadata.deletionTimestamp !== undefined);
    // A schedule already on its way when the controller closed the worker's session.
    await c.backend.schedule(w.spec.workerId, 'run-leaving-1', {}, true);
    expect(c.backend.statusesOf('run-leaving-1')).toEqual([]);
    expect(podsSeen.uidsByName.has(runPodName('run-leaving-1'))).toBe(false);
    c.backend.deregistrationFails.delete(w.spec.workerId);
    await eventually('deregistered', () => c.backend.workers.get(w.spec.workerId)?.deregistered === true, 40_000);
  });
});

describe('over the whole file', () => {
  it('no run ever had two Pods', () => {
    expect(podsSeen.count).toBeGreaterThan(5);
    expect([...podsSeen.uidsByName].filter(([, uids]) => uids.size !== 1)).toEqual([]);
  });
});
