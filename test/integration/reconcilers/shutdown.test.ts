/**
 * Stopping the controller cancels what is in flight instead of waiting it
 * out: a reconcile waiting for the broker's acknowledgement ends at once, and
 * what it was doing is redone by the next controller, nothing lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { PODS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-stop') });
  await c.start();
});
afterAll(async () => {
  c.backend.acksWithheld = false;
  await c?.stop();
});

describe('stopping the controller', () => {
  it('cancels a reconcile waiting for the broker, and the next controller reports the run', async () => {
    await c.createPool('wait', 1, poolCredentials('01hstopwaitaaaaaaaaaaaaaaa'));
    await eventually('an idle worker', async () => (await c.workers('wait'))[0]?.status?.state === 'Idle');
    const [w] = await c.workers('wait');
    if (w === undefined) throw new Error('no worker');
    await c.backend.schedule(w.spec.workerId, 'run-wait-1');

    c.backend.acksWithheld = true;
    await c.deletePod(runPodName('run-wait-1'));
    const workerKey = `${c.ns}/${w.metadata.name}`;
    await eventually('the report of the run waiting for its acknowledgement', () =>
      c.logs.lines.some((l) => l.includes('"queue":"worker"') && l.includes(workerKey)) || c.running.ctx.queues.workers.inFlight > 0,
    );
    await eventually('a reconcile in flight', () => c.running.ctx.queues.workers.inFlight > 0);
    await c.stop();
    expect(c.logs.lines.some((l) => l.includes('reconcile cancelled by shutdown') && l.includes(workerKey))).toBe(true);
    expect(c.backend.statusesOf('run-wait-1')).not.toContain('failed');
    // Unreported, the Pod is still held by its finalizer.
    expect((await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-wait-1'))))?.metadata?.deletionTimestamp).toBeDefined();

    c.backend.acksWithheld = false;
    await c.start();
    await eventually('the run reported failed', () => c.backend.statusesOf('run-wait-1').includes('failed'));
    await eventually('the Pod released', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-wait-1')))) === undefined);
  });
});
