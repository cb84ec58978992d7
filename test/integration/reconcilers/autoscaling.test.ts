/**
 * Built-in autoscaling in-process: the pool follows the backend's demand
 * (busy workers plus pending runs) between min and max, learned through the
 * pool's long poll even with no worker at all; down only after the delay,
 * never by taking a busy worker; spec.poolSize ignored meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_DRAINING } from '../../../src/api/constants.js';
import { WORKERPOOL_REF, type WorkerObject } from '../../../src/api/types.js';
import { EVENTS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-auto') });
  await c.start();
});
afterAll(async () => {
  c.backend.longPolls = true;
  await c?.stop();
});

const live = (ws: WorkerObject[]): WorkerObject[] => ws.filter((w) => w.metadata.deletionTimestamp === undefined && w.metadata.annotations?.[ANNOTATION_DRAINING] !== 'true');
const autoscalingCondition = async (pool: string) => (await c.pool(pool))?.status?.conditions?.find((x) => x.type === 'Autoscaling');
const autoscaledEvents = async (pool: string): Promise<string[]> =>
  (await c.admin.list(EVENTS, c.ns, { fieldSelector: `involvedObject.name=${pool},reason=PoolAutoscaled` })).items.map((e) => e.message ?? '');

describe('an autoscaled pool', () => {
  it('grows from zero workers to the runs waiting, and back to zero after the delay', async () => {
    const poolId = '01hautozeroaaaaaaaaaaaaaaa';
    await c.createPool('zero', 0, poolCredentials(poolId), { autoscaling: { minPoolSize: 0, maxPoolSize: 5, scaleDownDelay: '3s' } });
    await eventually('the pool reconciled', async () => (await autoscalingCondition('zero'))?.reason === 'Stable');
    expect(await c.workers('zero')).toEqual([]);

    c.backend.pending.set(poolId, 3);
    await eventually('three workers registered', async () => live(await c.workers('zero')).filter((w) => w.status?.state === 'Idle').length === 3);
    const pool = await c.pool('zero');
    expect(pool?.status).toMatchObject({ desiredPoolSize: 3, autoscaling: { recommendation: 3, pendingRuns: 3, busyWorkers: 0 } });
    expect(pool?.spec.poolSize).toBe(0);
    expect(await autoscaledEvents('zero')).toContain('scaled up from 0 to 3 worker(s): 0 busy, 3 pending');

    c.backend.pending.set(poolId, 0);
    await eventually('the scale-down pending', async () => (await autoscalingCondition('zero'))?.reason === 'ScaleDownPending');
    expect(live(await c.workers('zero'))).toHaveLength(3);
    await eventually('back at zero', async () => (await c.workers('zero')).length === 0, 30_000);
    expect((await c.pool('zero'))?.status?.desiredPoolSize).toBe(0);
  });

  it('never has more than maxPoolSize workers, and says the queue is longer', async () => {
    const poolId = '01hautomaxaaaaaaaaaaaaaaaa';
    c.backend.pending.set(poolId, 10);
    await c.createPool('max', 0, poolCredentials(poolId), { autoscaling: { minPoolSize: 0, maxPoolSize: 3 } });
    await eventually('three workers', async () => live(await c.workers('max')).length === 3);
    await eventually('AtMaximum', async () => (await autoscalingCondition('max'))?.reason === 'AtMaximum');
    expect(live(await c.workers('max'))).toHaveLength(3);
  });

  it('cancels a pending scale-down when runs come back, and never takes a busy worker', async () => {
    const poolId = '01hautobusyaaaaaaaaaaaaaaa';
    c.backend.pending.set(poolId, 2);
    await c.createPool('busy', 0, poolCredentials(poolId), { autoscaling: { minPoolSize: 0, maxPoolSize: 4, scaleDownDelay: '4s' } });
    await eventually('two idle workers', async () => live(await c.workers('busy')).filter((w) => w.status?.state === 'Idle').length === 2);
    const [first] = await c.workers('busy');
    if (first === undefined) throw new Error('no worker');
    // One of the two runs starts; the other is taken back out of the queue (say, stopped).
    c.backend.pending.set(poolId, 0);
    await c.backend.schedule(first.spec.workerId, 'run-busy-auto-1');
    await eventually('the scale-down pending', async () => (await autoscalingCondition('busy'))?.reason === 'ScaleDownPending');
    c.backend.pending.set(poolId, 1);
    await eventually('cancelled by the new run', async () => (await autoscalingCondition('busy'))?.reason === 'Stable');
    expect((await c.pool('busy'))?.status?.autoscaling?.scaleDownPendingSince).toBeUndefined();

    c.backend.pending.set(poolId, 0);
    await eventually('down to the busy worker only', async () => (await c.workers('busy')).length === 1, 30_000);
    const [left] = await c.workers('busy');
    expect(left?.metadata.name).toBe(first.metadata.name);
    expect(left?.metadata.annotations?.[ANNOTATION_DRAINING]).toBeUndefined();
    expect(left?.status?.state).toBe('Busy');
  });

  it('ignores spec.poolSize (kubectl scale) while autoscaling, and says so', async () => {
    const poolId = '01hautoignoreaaaaaaaaaaaaa';
    c.backend.pending.set(poolId, 1);
    await c.createPool('ignore', 0, poolCredentials(poolId), { autoscaling: { minPoolSize: 1, maxPoolSize: 2 } });
    await eventually('one worker', async () => live(await c.workers('ignore')).length === 1);
    await c.scale('ignore', 5);
    await eventually('the condition says spec.poolSize is ignored', async () => (await autoscalingCondition('ignore'))?.message.includes('spec.poolSize (5) is ignored') === true);
    expect(live(await c.workers('ignore'))).toHaveLength(1);
    expect((await c.pool('ignore'))?.spec.poolSize).toBe(5);
  });

  it('falls back to polling a backend that cannot wait', async () => {
    c.backend.longPolls = false;
    const poolId = '01hautopollaaaaaaaaaaaaaaa';
    await c.createPool('poll', 0, poolCredentials(poolId), { autoscaling: { minPoolSize: 0, maxPoolSize: 2 } });
    await eventually('the pool reconciled', async () => (await autoscalingCondition('poll'))?.reason === 'Stable');
    c.backend.pending.set(poolId, 1);
    await eventually('a worker, from a poll', async () => live(await c.workers('poll')).length === 1, 30_000);
    c.backend.longPolls = true;
  });

  it('goes back to spec.poolSize when autoscaling is removed', async () => {
    await c.admin.mergePatch(WORKERPOOL_REF, c.ns, 'ignore', { spec: { autoscaling: null } });
    await eventually('five workers, as spec.poolSize says', async () => live(await c.workers('ignore')).length === 5);
    // The same reconcile writes the status after making the Workers (and the disruption budget): wait for it.
    await eventually('status.autoscaling gone', async () => (await c.pool('ignore'))?.status?.autoscaling === undefined);
    expect((await autoscalingCondition('ignore'))?.reason).toBe('Disabled');
  });
});

describe('the CRD', () => {
  it('refuses a minimum above the maximum, naming both values', async () => {
    const err = await c.admin
      .create(WORKERPOOL_REF, c.ns, { metadata: { name: 'bad' }, spec: { autoscaling: { minPoolSize: 4, maxPoolSize: 2 } } })
      .then(() => undefined, (e: unknown) => e);
    expect(String((err as Error)?.message)).toContain('spec.autoscaling.minPoolSize (4) must not be greater than spec.autoscaling.maxPoolSize (2)');
  });
});
