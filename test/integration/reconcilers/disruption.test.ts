/**
 * Run Pods protected from voluntary disruption: the annotations autoscalers
 * read, and the PodDisruptionBudget a pool asks for, kept as the pool says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKERPOOL_REF } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { POD_DISRUPTION_BUDGETS, PODS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-pdb') });
  await c.start();
});
afterAll(async () => {
  await c?.stop();
});

const budget = () => ignoreNotFound(c.admin.get(POD_DISRUPTION_BUDGETS, c.ns, 'guarded-run-pods'));

describe('voluntary disruption', () => {
  it('marks every run Pod do-not-disrupt for the cluster autoscaler and Karpenter', async () => {
    await c.createPool('marked', 1, poolCredentials('01hpdbmarkedaaaaaaaaaaaaaa'));
    await eventually('an idle worker', async () => (await c.workers('marked'))[0]?.status?.state === 'Idle');
    const [w] = await c.workers('marked');
    await c.backend.schedule(w?.spec.workerId ?? '', 'run-marked-1');
    const pod = await c.admin.get(PODS, c.ns, runPodName('run-marked-1'));
    expect(pod.metadata?.annotations).toMatchObject({ 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false', 'karpenter.sh/do-not-disrupt': 'true' });
  });

  it('keeps the PodDisruptionBudget a pool asks for, puts it back when deleted, and removes it when no longer asked for', async () => {
    await c.createPool('guarded', 1, poolCredentials('01hpdbguardedaaaaaaaaaaaaa'), { pod: { nodeSelector: { 'kwc.test/never-scheduled': 'true' }, disruptionBudget: {} } });
    await eventually('the budget', async () => (await budget()) !== undefined);
    const made = await budget();
    expect(made?.spec).toMatchObject({ maxUnavailable: 0, selector: { matchLabels: { 'workers.spacelift.io/workerpool': '01hpdbguardedaaaaaaaaaaaaa' } } });
    expect(made?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'WorkerPool', name: 'guarded' });

    await c.admin.delete(POD_DISRUPTION_BUDGETS, c.ns, 'guarded-run-pods');
    await eventually('the budget put back', async () => (await budget())?.metadata?.uid !== undefined && (await budget())?.metadata?.uid !== made?.metadata?.uid);

    await c.admin.mergePatch(WORKERPOOL_REF, c.ns, 'guarded', { spec: { pod: { disruptionBudget: { maxUnavailable: '50%' } } } });
    await eventually('the budget updated', async () => (await budget())?.spec?.maxUnavailable === '50%');

    await c.admin.mergePatch(WORKERPOOL_REF, c.ns, 'guarded', { spec: { pod: { disruptionBudget: null } } });
    await eventually('the budget removed', async () => (await budget()) === undefined);
  });

  it('removes the budget with its pool', async () => {
    await c.createPool('gone', 1, poolCredentials('01hpdbgoneaaaaaaaaaaaaaaaa'), { pod: { disruptionBudget: { maxUnavailable: 1 } } });
    await eventually('the budget', async () => (await ignoreNotFound(c.admin.get(POD_DISRUPTION_BUDGETS, c.ns, 'gone-run-pods'))) !== undefined);
    await c.admin.delete(WORKERPOOL_REF, c.ns, 'gone');
    await eventually('the pool gone', async () => (await c.pool('gone')) === undefined);
    expect(await ignoreNotFound(c.admin.get(POD_DISRUPTION_BUDGETS, c.ns, 'gone-run-pods'))).toBeUndefined();
  });
});
