/**
 * The reconciler's typed view of WorkerPool and Worker objects as the API
 * serves them. Spec types come from `imports/` (generated from our own CRDs);
 * cdk8s import renames a few JSON fields (`...TTL` becomes `...Ttl`), so specs
 * read from the API go through `workerPoolSpecFromApi`.
 */
import type { WorkerPoolSpec, WorkerSpec } from '../../imports/workers.spacelift.io.js';
import { toJson_WorkerPoolSpec } from '../../imports/workers.spacelift.io.js';
import type { ObjectMeta } from './runtime/k8s-client.js';

export type { WorkerPoolSpec, WorkerSpec };

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

export interface WorkerPoolStatus {
  readonly poolId?: string;
  readonly desiredPoolSize?: number;
  readonly actualPoolSize?: number;
  readonly busyWorkers?: number;
  readonly idleWorkers?: number;
  readonly selector?: string;
  readonly observedGeneration?: number;
  readonly conditions?: readonly Condition[];
}

export type WorkerState = 'Pending' | 'Idle' | 'Busy' | 'Draining' | 'Failed';

export interface WorkerStatus {
  readonly registered?: boolean;
  readonly connected?: boolean;
  readonly state?: WorkerState;
  readonly currentRunID?: string;
  readonly observedGeneration?: number;
  readonly conditions?: readonly Condition[];
}

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

/** A WorkerPool exactly as the API serves it (spec in JSON field names). */
export interface WorkerPoolWire {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: ObjectMeta;
  readonly spec?: Readonly<Record<string, unknown>>;
  readonly status?: WorkerPoolStatus;
}

/** JSON names of spec fields whose generated TypeScript name differs. */
const RENAMED_SPEC_FIELDS: Readonly<Record<string, keyof WorkerPoolSpec>> = {
  successfulPodsHistoryTTL: 'successfulPodsHistoryTtl',
  failedPodsHistoryTTL: 'failedPodsHistoryTtl',
};

/** A WorkerPool spec as served by the API, in the generated type's field names. */
export function workerPoolSpecFromApi(raw: Readonly<Record<string, unknown>>): WorkerPoolSpec {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) out[RENAMED_SPEC_FIELDS[key] ?? key] = value;
  return out as WorkerPoolSpec;
}

/** The inverse of `workerPoolSpecFromApi`: the JSON the API takes. */
export function workerPoolSpecToApi(spec: WorkerPoolSpec): Record<string, unknown> {
  return toJson_WorkerPoolSpec(spec) ?? {};
}

export function workerPoolFromApi(raw: WorkerPoolWire): WorkerPoolObject {
  return {
    apiVersion: raw.apiVersion ?? '',
    kind: raw.kind ?? '',
    metadata: raw.metadata,
    spec: workerPoolSpecFromApi(raw.spec ?? {}),
    status: raw.status,
  };
}
