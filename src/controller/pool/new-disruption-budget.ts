/**
 * The PodDisruptionBudget a pool asks for over its run Pods
 * (`spec.pod.disruptionBudget`): the pool's run Pods, found by the pool id
 * label they all carry, with `maxUnavailable` 0 unless the pool says
 * otherwise, so an eviction (kubectl drain, a node upgrade, an autoscaler)
 * waits for the runs to end. Owned by the pool.
 */
import { LABEL_MANAGED_BY, LABEL_WORKERPOOL, MANAGED_BY_VALUE } from '../../api/constants.js';
import type { WorkerPoolObject } from '../../api/types.js';
import type { PodDisruptionBudget } from '../../runtime/k8s-client.js';
import { controllerReference } from '../../runtime/owners.js';

/** `<pool name>-run-pods`; pool names are at most 226 characters, so this stays a valid name. */
export function disruptionBudgetName(pool: WorkerPoolObject): string {
  return `${pool.metadata.name ?? ''}-run-pods`;
}

/** The budget the pool asks for, or undefined when it asks for none. */
export function newRunPodDisruptionBudget(pool: WorkerPoolObject, poolId: string): PodDisruptionBudget | undefined {
  const wanted = pool.spec.pod?.disruptionBudget;
  if (wanted === undefined) return undefined;
  return {
    metadata: {
      name: disruptionBudgetName(pool),
      namespace: pool.metadata.namespace,
      labels: { [LABEL_WORKERPOOL]: poolId, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
      ownerReferences: [controllerReference(pool)],
    },
    spec: {
      selector: { matchLabels: { [LABEL_WORKERPOOL]: poolId, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE } },
      maxUnavailable: wanted.maxUnavailable ?? 0,
    },
  };
}
