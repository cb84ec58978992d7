/**
 * WorkerPool and Worker objects as the API serves them, and where they live
 * in the API. Spec and status types come from the schemas (`workerpool.ts`,
 * `worker.ts`), so they cannot drift from the CRDs.
 */
import { resource, type ObjectMeta } from '../runtime/k8s-client.js';
import { API_GROUP, API_VERSION, WORKER_KIND, WORKER_PLURAL, WORKERPOOL_KIND, WORKERPOOL_PLURAL } from './constants.js';
import type { WorkerSpec, WorkerStatus } from './worker.js';
import type { WorkerPoolSpec, WorkerPoolStatus } from './workerpool.js';

export type { Condition, ConditionStatus } from '../runtime/conditions.js';
export type { WorkerState } from './conditions.js';
export type { WorkerSpec, WorkerStatus } from './worker.js';
export type { RunPodSettings, WorkerPoolSpec, WorkerPoolSpecProps, WorkerPoolStatus } from './workerpool.js';

/** Lists of custom resources carry apiVersion and kind on every item, so informer objects have them. */
export interface WorkerPoolObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly spec: WorkerPoolSpec;
  readonly status?: WorkerPoolStatus;
}

export interface WorkerObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly spec: WorkerSpec;
  readonly status?: WorkerStatus;
}

export const WORKERPOOL_REF = resource<WorkerPoolObject>(API_GROUP, API_VERSION, WORKERPOOL_PLURAL, WORKERPOOL_KIND);
export const WORKER_REF = resource<WorkerObject>(API_GROUP, API_VERSION, WORKER_PLURAL, WORKER_KIND);
