/**
 * A restarted controller opens every Worker's session again. Until a session
 * says whether it connected, the Worker's status keeps what it said: a
 * connected Worker does not read "connected: false" for the moment its new
 * session takes, however often it is reconciled meanwhile (at N = 1000 that
 * flip cost 1.5 status writes per worker during the recovery). And its run
 * log relays wait for those sessions: they catch up on logs afterwards.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_REF, type WorkerObject } from '../../../src/api/types.js';
import { Informer } from '../../../src/runtime/informer.js';
import { kubeListWatch } from '../../../src/runtime/list-watch.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-restart') });
  await c.start();
});
afterAll(async () => {
  await c?.stop();
});

describe('a restarted controller', () => {
  it('keeps connected Workers connected in their status while their sessions come back, however often reconciled meanwhile', async () => {
    await c.createPool('keep', 2, poolCredentials('01hkeepconnectedaaaaaaaaaa'));
    await eventually('two idle connected workers', async () => (await c.workers('keep')).filter((w) => w.status?.connected === true && w.status.state === 'Idle').length === 2);
    const workers = await c.workers('keep');

    // Every status the Workers have from now on.
    const notConnected: string[] = [];
    const watch = new Informer<WorkerObject>(kubeListWatch(c.admin, WORKER_REF), { name: 'restart-status', namespaces: [c.ns] });
    watch.addEventHandler({
      onUpdate: (_old, w) => {
        if (w.status?.connected !== true) notConnected.push(`${w.metadata.name ?? ''}: ${JSON.stringify(w.status)}`);
      },
    });
    watch.start();
    await watch.waitForSync();
    try {
      await c.stop();
      // The new sessions stay unconnected until the test lets them up.
      for (const w of workers) c.backend.offline.add(w.spec.workerId);
      const before = c.workerReconciles.length;
      await c.start();
      await eventually('new sessions opened', () => workers.every((w) => c.backend.sessionOf(w.spec.workerId)?.connected === false));
      // Bring each Worker back to a reconcile while its session is still coming up.
      for (const w of workers) await c.admin.mergePatch(WORKER_REF, c.ns, w.metadata.name ?? '', { metadata: { annotations: { 'kwc.test/poke': '1' } } });
      const keys = workers.map((w) => `${c.ns}/${w.metadata.name ?? ''}`);
      await eventually('two reconciles of each Worker by the new controller', () => keys.every((k) => c.workerReconciles.slice(before).filter((r) => r === k).length >= 2));
      await sleep(200);
      expect(notConnected).toEqual([]);

      for (const w of workers) c.backend.connect(w.spec.workerId);
      await eventually('the sessions up', () => workers.every((w) => c.backend.sessionOf(w.spec.workerId)?.connected === true));
      await eventually('a reconcile of each after its session came up', () => keys.every((k) => c.workerReconciles.slice(before).filter((r) => r === k).length >= 3));
      expect(notConnected).toEqual([]);
      expect((await c.workers('keep')).map((w) => [w.status?.connected, w.status?.state])).toEqual([
        [true, 'Idle'],
        [true, 'Idle'],
      ]);
    } finally {
      await watch.stop();
    }
  });

  it('opens the run log relays\' gate only once the workers\' sessions are back', async () => {
    await c.createPool('logs', 1, poolCredentials('01hlogsaftersessionsaaaaaa'));
    await eventually('an idle connected worker', async () => (await c.workers('logs'))[0]?.status?.state === 'Idle');
    const [w] = await c.workers('logs');
    if (w === undefined) throw new Error('no worker');

    await c.stop();
    for (const other of await c.workers()) c.backend.offline.add(other.spec.workerId);
    const from = c.logs.lines.length;
    const gateOpened = () => c.logs.lines.slice(from).find((l) => l.includes('worker sessions back; run log relays begin'));
    await c.start();
    await eventually('the new session opened', () => c.backend.sessionOf(w.spec.workerId)?.connected === false);
    await sleep(1_500);
    expect(gateOpened()).toBeUndefined();

    for (const other of await c.workers()) c.backend.connect(other.spec.workerId);
    await eventually('the gate open', () => gateOpened() !== undefined);
    const sessions = (await c.workers()).length;
    expect(JSON.parse(gateOpened() ?? '{}')).toMatchObject({ sessions, connected: sessions });
  });
});
