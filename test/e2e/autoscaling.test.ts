/**
 * Built-in autoscaling on the real node (issue 20): runs submitted to a pool
 * at zero workers get workers and really run; the pool never exceeds its
 * maximum; it goes back to its minimum after the delay without draining a
 * busy worker; a burst during a pending scale-down cancels it. "Never" is
 * checked with a watch over the whole test, not a final count.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ANNOTATION_DRAINING } from '../../src/api/constants.js';
import { WORKER_REF, type WorkerObject } from '../../src/api/types.js';
import { Informer } from '../../src/runtime/informer.js';
import { KubeClient } from '../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../src/runtime/list-watch.js';
import { skipWithout, testKubeConfig, testNode } from '../setup/cluster-access.js';
import { startE2E, waitFor, WAITING_SCRIPT, type E2E } from './harness.js';

const node = testNode();

/** Live (not deleting, not draining) Workers of a pool at any moment, and the most there ever were. */
class PoolWatch {
  peak = 0;
  readonly drainedWhileBusy: string[] = [];
  private constructor(private readonly informer: Informer<WorkerObject>, private readonly poolName: string) {}

  static async start(namespace: string, poolName: string): Promise<PoolWatch> {
    const informer = new Informer<WorkerObject>(kubeListWatch(KubeClient.fromKubeConfig(testKubeConfig()), WORKER_REF), { name: 'autoscaling-test', namespaces: [namespace] });
    const watch = new PoolWatch(informer, poolName);
    const look = (w: WorkerObject): void => {
      if (w.spec.poolName !== poolName) return;
      if (w.metadata.annotations?.[ANNOTATION_DRAINING] === 'true' && w.status?.state === 'Busy') watch.drainedWhileBusy.push(w.metadata.name ?? '');
      watch.peak = Math.max(watch.peak, watch.live().length);
    };
    informer.addEventHandler({ onAdd: look, onUpdate: (_o, w) => look(w) });
    informer.start();
    await informer.waitForSync();
    return watch;
  }

  live(): WorkerObject[] {
    return this.informer.list((w) => w.spec.poolName === this.poolName && w.metadata.deletionTimestamp === undefined && w.metadata.annotations?.[ANNOTATION_DRAINING] !== 'true');
  }

  all(): WorkerObject[] {
    return this.informer.list((w) => w.spec.poolName === this.poolName);
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }
}

describe.skipIf(skipWithout('the node', node !== null))('autoscaling on the node', () => {
  let e2e: E2E;
  const watches: PoolWatch[] = [];

  beforeAll(async () => {
    e2e = await startE2E('e2e-auto');
    e2e.startController();
  });
  afterAll(async () => {
    for (const w of watches) await w.stop();
    await e2e?.close();
  });

  test('a pool at zero gets a worker per run, the runs really run, and the pool goes back to zero after the delay', async () => {
    const pool = await e2e.createWorkerPool('zero', 0, { autoscaling: { minPoolSize: 0, maxPoolSize: 6, scaleDownDelay: '10s' } });
    const watch = await PoolWatch.start(e2e.namespace, 'zero');
    watches.push(watch);
    await waitFor('the pool reconciled at zero', async () => (await e2e.pool('zero')).status?.conditions?.some((c) => c.type === 'Autoscaling' && c.reason === 'Stable') === true, 60_000);
    expect(watch.all()).toEqual([]);

    const runs = await Promise.all(Array.from({ length: 5 }, () => e2e.submitScriptRun(pool.id, 'sleep 4; echo ran')));
    await waitFor('five workers', async () => watch.live().length === 5, 90_000);
    await waitFor('every run finished', async () => (await Promise.all(runs.map((id) => e2e.run(id)))).every((r) => r.state === 'finished'), 180_000);
    await waitFor('back at zero workers', async () => watch.all().length === 0, 120_000);
    expect(watch.peak).toBe(5);
    expect(watch.drainedWhileBusy).toEqual([]);
    const events = await e2e.eventsFor('WorkerPool', 'zero');
    expect(events.map((e) => e.message)).toEqual(expect.arrayContaining([expect.stringMatching(/^scaled up from 0 to \d worker/), expect.stringMatching(/^scaled down from \d to 0 worker/)]));
  }, 600_000);

  test('a pool of at most 3 never has more, and every one of 10 runs finishes', async () => {
    const pool = await e2e.createWorkerPool('max', 0, { autoscaling: { minPoolSize: 0, maxPoolSize: 3, scaleDownDelay: '10s' } });
    const watch = await PoolWatch.start(e2e.namespace, 'max');
    watches.push(watch);
    const runs = await Promise.all(Array.from({ length: 10 }, () => e2e.submitScriptRun(pool.id, 'sleep 2; echo ran')));
    await waitFor('every run finished', async () => (await Promise.all(runs.map((id) => e2e.run(id)))).every((r) => r.state === 'finished'), 300_000);
    expect(watch.peak).toBe(3);
    expect(watch.drainedWhileBusy).toEqual([]);
  }, 600_000);

  test('a busy worker is never drained by a scale-down, and a burst cancels a pending one', async () => {
    const pool = await e2e.createWorkerPool('busy', 0, { autoscaling: { minPoolSize: 0, maxPoolSize: 4, scaleDownDelay: '20s' } });
    const watch = await PoolWatch.start(e2e.namespace, 'busy');
    watches.push(watch);
    const long = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
    const short = await e2e.submitScriptRun(pool.id, 'sleep 2; echo ran');
    await waitFor('two workers', async () => watch.live().length === 2, 90_000);
    await waitFor('the short run finished', async () => (await e2e.run(short)).state === 'finished', 120_000);
    // Demand is now one busy worker: the second waits out the delay.
    await waitFor('a scale-down pending', async () => (await e2e.pool('busy')).status?.autoscaling?.scaleDownPendingSince !== undefined, 60_000);
    const burst = await Promise.all(Array.from({ length: 2 }, () => e2e.submitScriptRun(pool.id, 'sleep 2; echo ran')));
    await waitFor('the scale-down cancelled', async () => (await e2e.pool('busy')).status?.autoscaling?.scaleDownPendingSince === undefined, 60_000);
    await waitFor('the burst finished', async () => (await Promise.all(burst.map((id) => e2e.run(id)))).every((r) => r.state === 'finished'), 180_000);
    // After the delay only the busy worker is left, still running its run.
    await waitFor('down to the busy worker', async () => watch.all().length === 1, 120_000);
    expect(watch.all()[0]?.status?.state).toBe('Busy');
    expect((await e2e.run(long)).state).toBe('running');
    expect(watch.drainedWhileBusy).toEqual([]);
    const [pod] = await e2e.pods(`workers.spacelift.io/run-id=${long}`);
    await e2e.endRun(pod?.metadata?.name ?? '', 0);
    await waitFor('the long run finished', async () => (await e2e.run(long)).state === 'finished', 60_000);
    await waitFor('back at zero', async () => watch.all().length === 0, 120_000);
  }, 600_000);
});
