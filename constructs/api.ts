/**
 * The package's `api` export: the names and types of the WorkerPool and
 * Worker API, from the module the controller itself reads them from (src/api),
 * so that an app and the controller cannot disagree. For a cdk8s app that
 * reads status (`WorkerPoolStatus`), waits on conditions (`PoolCondition`,
 * reasons) or selects Workers and run Pods by label (`LABEL_WORKERPOOL`).
 *
 * Not the `cdk8s import` classes of imports/: they spell the TTL fields
 * `...Ttl`, type embedded objects `any` and write a plain quantity string as
 * null; the `WorkerPool` construct is the one way to write a WorkerPool.
 */
export * from '../src/api/constants.js';
export * from '../src/api/conditions.js';
export { MAX_POOL_NAME_LENGTH } from '../src/api/workerpool.js';
export type { WorkerPoolSpec, WorkerPoolSpecProps, WorkerPoolStatus } from '../src/api/workerpool.js';
export type { WorkerSpec, WorkerStatus } from '../src/api/worker.js';
export type { K8sProps } from '../src/api/schema.js';
