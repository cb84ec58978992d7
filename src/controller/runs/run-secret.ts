/**
 * The run's Secret: how a run's script reaches its Pod. A schedule message
 * only names the script (its SHA-256 and size: a 256 KiB script cannot ride
 * in a message of at most 256 KiB beside the rest), the controller fetches
 * it from the backend with the pool's key, and puts it into this Secret,
 * which the run Pod mounts into `init` alone. Nothing in the Pod can reach
 * the backend, and no credential enters it.
 *
 * Made right after the Pod, so that it is owned by the Pod too: the garbage
 * collector removes it with the Pod, whoever deletes the Pod. The controller
 * owner reference to the Worker is what the install's admission policy asks
 * of every Secret the controller writes. Immutable: the kubelet need not
 * watch it, and nobody can change the script under a run (init checks it
 * against the schedule's SHA-256 anyway).
 */
import type { Secret } from '../../runtime/k8s-client.js';
import { API_GROUP_VERSION, LABEL_MANAGED_BY, LABEL_RUN_ID, LABEL_WORKER, LABEL_WORKERPOOL, MANAGED_BY_VALUE, RUN_SECRET_KEY_SCRIPT, WORKER_KIND } from '../../api/constants.js';
import { controllerReference } from '../../runtime/owners.js';
import { runSecretName } from './run-pod.js';

export interface RunSecretInput {
  readonly namespace: string;
  readonly runId: string;
  /** The backend's pool id. */
  readonly poolId: string;
  readonly worker: { readonly name: string; readonly uid: string; readonly workerId: string };
  /** The run Pod, which owns the Secret besides the Worker. */
  readonly pod: { readonly name: string; readonly uid: string };
  readonly script: Buffer;
}

export function buildRunSecret(input: RunSecretInput): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: runSecretName(input.runId),
      namespace: input.namespace,
      labels: {
        [LABEL_RUN_ID]: input.runId,
        [LABEL_WORKER]: input.worker.workerId,
        [LABEL_WORKERPOOL]: input.poolId,
        [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
      },
      ownerReferences: [
        controllerReference({ apiVersion: API_GROUP_VERSION, kind: WORKER_KIND, metadata: input.worker }),
        { apiVersion: 'v1', kind: 'Pod', name: input.pod.name, uid: input.pod.uid },
      ],
    },
    type: 'Opaque',
    immutable: true,
    data: { [RUN_SECRET_KEY_SCRIPT]: input.script.toString('base64') },
  };
}
