/**
 * The Worker object a pool creates for each unit of `poolSize`: named after
 * the pool and the backend's worker id, labelled with the pool id (the
 * documented selector), owned by the pool, held by the deregistration
 * finalizer until the backend has forgotten it.
 */
import { API_GROUP_VERSION, FINALIZER_WORKER, LABEL_MANAGED_BY, LABEL_WORKERPOOL, MANAGED_BY_VALUE, WORKER_KIND } from '../../api/constants.js';
import type { WorkerObject, WorkerPoolObject } from '../../api/types.js';
import { controllerReference } from '../../runtime/owners.js';
import { workerName } from '../worker/id.js';

export function newWorker(pool: WorkerPoolObject, poolId: string, workerId: string): WorkerObject {
  const poolName = pool.metadata.name ?? '';
  return {
    apiVersion: API_GROUP_VERSION,
    kind: WORKER_KIND,
    metadata: {
      name: workerName(poolName, workerId),
      namespace: pool.metadata.namespace,
      labels: { [LABEL_WORKERPOOL]: poolId, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
      finalizers: [FINALIZER_WORKER],
      ownerReferences: [controllerReference(pool)],
    },
    spec: { poolName, workerId },
  };
}
