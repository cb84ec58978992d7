/**
 * Work-queue keys ("namespace/name") of the objects a controller object
 * points at: one spelling each, so that a Worker's pool, a Pod's Worker and
 * the pool's index of Workers always agree.
 */
import { WORKER_KIND } from '../api/constants.js';
import type { WorkerObject } from '../api/types.js';
import { objectKey } from '../runtime/informer.js';
import type { Pod } from '../runtime/k8s-client.js';
import { ownerName } from '../runtime/owners.js';

export { objectKey };

/** The key of the WorkerPool a Worker belongs to. */
export function poolKeyOf(worker: WorkerObject): string {
  return objectKey({ metadata: { namespace: worker.metadata.namespace, name: worker.spec.poolName } });
}

/** The key of the Worker that owns a run Pod, if it has one. */
export function workerKeyOf(pod: Pod): string | undefined {
  const name = ownerName(pod, WORKER_KIND);
  return name === undefined ? undefined : objectKey({ metadata: { namespace: pod.metadata?.namespace, name } });
}
