/**
 * Adding and removing one finalizer with optimistic locking: the patch carries
 * the resourceVersion it was computed from, so a concurrent writer makes it
 * fail with a conflict (retried) instead of losing someone else's finalizer.
 */
import type { KubeClient, KubeObject, ObjectMeta, ResourceRef } from './k8s-client.js';

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
