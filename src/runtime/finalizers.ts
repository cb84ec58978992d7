/**
 * Adding and removing one finalizer with optimistic locking: the patch carries
 * the resourceVersion it was computed from, so a concurrent writer makes it
 * fail with a conflict (retried) instead of losing someone else's finalizer.
 */
import { ignoreNotFound } from './errors.js';
import type { DeleteOptions, KubeClient, KubeObject, ObjectMeta, ResourceRef } from './k8s-client.js';

interface WithMeta extends KubeObject {
  readonly metadata?: ObjectMeta;
}

export function hasFinalizer(obj: WithMeta, finalizer: string): boolean {
  return obj.metadata?.finalizers?.includes(finalizer) ?? false;
}

export async function addFinalizer<T extends WithMeta>(client: KubeClient, ref: ResourceRef<T>, obj: T, finalizer: string): Promise<void> {
  if (hasFinalizer(obj, finalizer)) return;
  await client.mergePatch(ref, obj.metadata?.namespace, obj.metadata?.name ?? '', {
    metadata: { finalizers: [...(obj.metadata?.finalizers ?? []), finalizer], resourceVersion: obj.metadata?.resourceVersion },
  });
}

export async function removeFinalizer<T extends WithMeta>(client: KubeClient, ref: ResourceRef<T>, obj: T, finalizer: string): Promise<void> {
  if (!hasFinalizer(obj, finalizer)) return;
  await client.mergePatch(ref, obj.metadata?.namespace, obj.metadata?.name ?? '', {
    metadata: { finalizers: (obj.metadata?.finalizers ?? []).filter((f) => f !== finalizer), resourceVersion: obj.metadata?.resourceVersion },
  });
}

/**
 * Lets the object go: its finalizer removed, then the object deleted. Either
 * step finding the object gone counts as done.
 */
export async function releaseAndDelete<T extends WithMeta>(
  client: KubeClient,
  ref: ResourceRef<T>,
  obj: T,
  finalizer: string,
  options: DeleteOptions = {},
): Promise<void> {
  await ignoreNotFound(removeFinalizer(client, ref, obj, finalizer));
  await ignoreNotFound(client.delete(ref, obj.metadata?.namespace, obj.metadata?.name ?? '', options));
}
