import { describe, expect, it } from 'vitest';
import type { WorkerPoolObject } from '../../src/api/types.js';
import { newRunPodDisruptionBudget } from '../../src/controller/pool/new-disruption-budget.js';

const pool = (pod: WorkerPoolObject['spec']['pod']): WorkerPoolObject => ({
  apiVersion: 'workers.spacelift.io/v1beta1',
  kind: 'WorkerPool',
  metadata: { name: 'ci', namespace: 'team-a', uid: 'u-1' },
  spec: { poolSize: 2, pod },
});

describe('newRunPodDisruptionBudget', () => {
  it('is absent unless the pool asks for it', () => {
    expect(newRunPodDisruptionBudget(pool(undefined), 'p1')).toBeUndefined();
    expect(newRunPodDisruptionBudget(pool({ labels: { a: 'b' } }), 'p1')).toBeUndefined();
  });

  it('covers the pool\'s run Pods by its pool id, allows no eviction by default, and is owned by the pool', () => {
    expect(newRunPodDisruptionBudget(pool({ disruptionBudget: {} }), 'p1')).toEqual({
      metadata: {
        name: 'ci-run-pods',
        namespace: 'team-a',
        labels: { 'workers.spacelift.io/workerpool': 'p1', 'app.kubernetes.io/managed-by': 'kube-workerpool-controller' },
        ownerReferences: [{ apiVersion: 'workers.spacelift.io/v1beta1', kind: 'WorkerPool', name: 'ci', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        selector: { matchLabels: { 'workers.spacelift.io/workerpool': 'p1', 'app.kubernetes.io/managed-by': 'kube-workerpool-controller' } },
        maxUnavailable: 0,
      },
    });
  });

  it('takes the pool\'s maxUnavailable, a number or a percentage', () => {
    expect(newRunPodDisruptionBudget(pool({ disruptionBudget: { maxUnavailable: 2 } }), 'p1')?.spec?.maxUnavailable).toBe(2);
    expect(newRunPodDisruptionBudget(pool({ disruptionBudget: { maxUnavailable: '25%' } }), 'p1')?.spec?.maxUnavailable).toBe('25%');
  });
});
