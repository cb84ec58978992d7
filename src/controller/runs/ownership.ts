/**
 * Whether an object is really a Worker's own: the checks `schedule`, `stop`
 * and the Worker's Secret go through before the controller acts on an object
 * it found by name. Names are predictable (`<run id>-run-1`, the Worker's
 * name), so anyone who may create Pods or Secrets in the namespace could
 * otherwise have the controller stop, adopt or report on an object it never
 * made.
 *
 * @module
 */
import { API_GROUP, LABEL_MANAGED_BY, LABEL_RUN_ID, LABEL_WORKER, LABEL_WORKER_SECRET, MANAGED_BY_VALUE, WORKER_KIND } from '../../api/constants.js';
import type { WorkerObject } from '../../api/types.js';
import { ignoreNotFound } from '../../runtime/errors.js';
import { PODS, type Pod, type Secret } from '../../runtime/k8s-client.js';
import type { ControllerContext } from '../context.js';

interface Owned {
  readonly metadata?: {
    readonly labels?: Readonly<Record<string, string>>;
    readonly ownerReferences?: ReadonlyArray<{ readonly apiVersion?: string; readonly kind?: string; readonly uid?: string; readonly controller?: boolean }>;
  };
}

/** A controller owner reference to this very Worker (its uid, not just its name). */
function controlledBy(obj: Owned, worker: WorkerObject): boolean {
  const uid = worker.metadata.uid;
  return (
    uid !== undefined &&
    (obj.metadata?.ownerReferences ?? []).some((r) => r.controller === true && r.kind === WORKER_KIND && r.uid === uid && (r.apiVersion ?? '').startsWith(`${API_GROUP}/`))
  );
}

/** The Worker's run Pod: our label, the Worker's id label, the run's id label when given, and owned by the Worker. */
export function isRunPodOf(pod: Pod, worker: WorkerObject, runId?: string): boolean {
  const labels = pod.metadata?.labels ?? {};
  return (
    labels[LABEL_MANAGED_BY] === MANAGED_BY_VALUE &&
    labels[LABEL_WORKER] === worker.spec.workerId &&
    (runId === undefined || labels[LABEL_RUN_ID] === runId) &&
    controlledBy(pod, worker)
  );
}

/** The Worker's credentials Secret: our labels and owned by the Worker. */
export function isSecretOf(secret: Secret, worker: WorkerObject): boolean {
  const labels = secret.metadata?.labels ?? {};
  return labels[LABEL_MANAGED_BY] === MANAGED_BY_VALUE && labels[LABEL_WORKER_SECRET] === worker.metadata.name && controlledBy(secret as Owned, worker);
}

/** Why an object with the Worker's expected name is not its own, for events and run failures. */
export function notOwnedReason(kind: 'Pod' | 'Secret', name: string, worker: WorkerObject): string {
  return `${kind} ${name} exists but is not Worker ${worker.metadata.name ?? ''}'s (its labels or owner reference do not match): the controller leaves it alone`;
}

/** Reads the Pod of that name live (the cache sees only Pods with our label) and checks it is the Worker's. */
export async function podIsOurs(ctx: ControllerContext, namespace: string, name: string, worker: WorkerObject, runId: string): Promise<boolean> {
  const pod = await ignoreNotFound(ctx.client.get(PODS, namespace, name));
  return pod !== undefined && isRunPodOf(pod, worker, runId);
}
