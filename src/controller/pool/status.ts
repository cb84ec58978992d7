/**
 * A WorkerPool's status, computed from its Workers and credentials. Pure, so
 * what `kubectl get workerpools` shows is tested without a cluster.
 */
import { LABEL_WORKERPOOL } from '../../api/constants.js';
import { CredentialsReason, PoolCondition, PoolReadyReason, type CredentialsProblem } from '../../api/conditions.js';
import type { WorkerObject, WorkerPoolObject, WorkerPoolStatus } from '../../api/types.js';
import { setCondition, type Condition } from '../../runtime/conditions.js';
import { workerKeyTypeFor, type ProtocolVersion } from '../../protocol/index.js';

const KEYS_OF_NEW_WORKERS = { rsa: 'RSA', 'ecdsa-p256': 'ECDSA P-256' } as const;

function credentialsAccepted(protocolVersion: ProtocolVersion | undefined): string {
  const accepted = 'the token and private key were accepted';
  if (protocolVersion === undefined) return accepted;
  return `${accepted}; protocol version ${protocolVersion}: new workers get ${KEYS_OF_NEW_WORKERS[workerKeyTypeFor(protocolVersion)]} keys`;
}

export type CredentialsState =
  /** `protocolVersion`: the token's, which decides the keys of new workers; shown in the condition when known. */
  | { readonly valid: true; readonly poolId: string; readonly protocolVersion?: ProtocolVersion }
  | { readonly valid: false; readonly reason: CredentialsProblem; readonly message: string; readonly poolId?: string };

export function isBusy(w: WorkerObject): boolean {
  return w.status?.state === 'Busy' || (w.status?.state === 'Draining' && (w.status.currentRunID ?? '') !== '');
}

export function computePoolStatus(
  pool: WorkerPoolObject,
  credentials: CredentialsState,
  workers: readonly WorkerObject[],
  now: Date = new Date(),
  /** The size worked towards: spec.poolSize, or the autoscaler's recommendation. */
  desired: number = pool.spec.poolSize ?? 1,
): WorkerPoolStatus {
  const generation = pool.metadata.generation;
  const live = workers.filter((w) => w.metadata.deletionTimestamp === undefined);
  const connected = live.filter((w) => w.status?.registered === true && w.status.connected === true);
  const busy = live.filter(isBusy).length;
  const idle = live.filter((w) => w.status?.state === 'Idle').length;
  const draining = live.filter((w) => w.status?.state === 'Draining').length;
  const poolId = credentials.poolId ?? pool.status?.poolId;

  let conditions: Condition[] = [...(pool.status?.conditions ?? [])];
  conditions = credentials.valid
    ? setCondition(conditions, { type: PoolCondition.CredentialsValid, status: 'True', reason: CredentialsReason.CredentialsAccepted, message: credentialsAccepted(credentials.protocolVersion) }, generation, now)
    : setCondition(conditions, { type: PoolCondition.CredentialsValid, status: 'False', reason: credentials.reason, message: credentials.message }, generation, now);

  let ready: { status: 'True' | 'False'; reason: string; message: string };
  if (!credentials.valid) {
    ready = { status: 'False', reason: PoolReadyReason.CannotRegister, message: credentials.message };
  } else if (connected.length === desired && live.length === desired) {
    ready = { status: 'True', reason: PoolReadyReason.PoolReady, message: `${desired} of ${desired} workers registered and connected` };
  } else if (live.length > desired || draining > 0) {
    ready = { status: 'False', reason: PoolReadyReason.ScalingDown, message: `${live.length} workers for a pool size of ${desired}; busy workers leave after their run` };
  } else {
    ready = { status: 'False', reason: PoolReadyReason.ScalingUp, message: `${connected.length} of ${desired} workers registered and connected` };
  }
  conditions = setCondition(conditions, { type: PoolCondition.Ready, ...ready }, generation, now);

  return {
    poolId,
    desiredPoolSize: desired,
    // Absent while the credentials are broken: the documented `kubectl get workerpools` shows it empty.
    actualPoolSize: credentials.valid ? connected.length : undefined,
    busyWorkers: busy,
    idleWorkers: idle,
    selector: poolId === undefined ? undefined : `${LABEL_WORKERPOOL}=${poolId}`,
    observedGeneration: generation,
    conditions,
  };
}
