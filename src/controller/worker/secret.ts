/**
 * A Worker's own credentials live in a Secret named like the Worker and owned
 * by it: the private key is written before registration, so a controller
 * killed mid-registration retries with the same key and worker id, and a
 * restarted controller reconnects without registering again.
 */
import {
  LABEL_MANAGED_BY,
  LABEL_WORKER_SECRET,
  LABEL_WORKERPOOL,
  MANAGED_BY_VALUE,
  WORKER_SECRET_CA,
  WORKER_SECRET_CERT,
  WORKER_SECRET_KEY,
  WORKER_SECRET_NEXT_KEY,
} from '../../api/constants.js';
import type { WorkerObject } from '../../api/types.js';
import type { Secret } from '../../runtime/k8s-client.js';
import { controllerReference } from '../../runtime/owners.js';

export interface WorkerSecretContent {
  readonly privateKeyPem?: string;
  readonly certificatePem?: string;
  readonly caPem?: string;
  /** The key of a renewal in progress. */
  readonly nextPrivateKeyPem?: string;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** The Secret holding only the new key; the certificate is added after registration. */
export function buildWorkerSecret(worker: WorkerObject, poolId: string, privateKeyPem: string): Secret {
  return {
    metadata: {
      name: worker.metadata.name,
      namespace: worker.metadata.namespace,
      labels: {
        [LABEL_WORKER_SECRET]: worker.metadata.name ?? '',
        [LABEL_WORKERPOOL]: poolId,
        [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
      },
      ownerReferences: [controllerReference(worker)],
    },
    type: 'Opaque',
    data: { [WORKER_SECRET_KEY]: b64(privateKeyPem) },
  };
}

/** The merge patch that adds the registration's certificate and CA. */
export function certificatePatch(certificatePem: string, caPem: string): { data: Record<string, string> } {
  return { data: { [WORKER_SECRET_CERT]: b64(certificatePem), [WORKER_SECRET_CA]: b64(caPem) } };
}

/** The merge patch that stores a renewal's new key before its certificate is asked for. */
export function pendingKeyPatch(privateKeyPem: string): { data: Record<string, string> } {
  return { data: { [WORKER_SECRET_NEXT_KEY]: b64(privateKeyPem) } };
}

/** The merge patch that completes a renewal: the new key and certificate replace the old ones in one write. */
export function renewedPatch(privateKeyPem: string, certificatePem: string, caPem: string): { data: Record<string, string | null> } {
  return { data: { [WORKER_SECRET_KEY]: b64(privateKeyPem), [WORKER_SECRET_CERT]: b64(certificatePem), [WORKER_SECRET_CA]: b64(caPem), [WORKER_SECRET_NEXT_KEY]: null } };
}

export function readWorkerSecret(secret: Secret | undefined): WorkerSecretContent {
  const get = (key: string): string | undefined => {
    const value = secret?.data?.[key];
    return value === undefined || value === '' ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  const next = get(WORKER_SECRET_NEXT_KEY);
  return { privateKeyPem: get(WORKER_SECRET_KEY), certificatePem: get(WORKER_SECRET_CERT), caPem: get(WORKER_SECRET_CA), ...(next === undefined ? {} : { nextPrivateKeyPem: next }) };
}
