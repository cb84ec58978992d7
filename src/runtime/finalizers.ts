/**
 * Adding and removing one finalizer without losing anyone else's.
 *
 * Removal is a JSON patch that tests the finalizer is still at the index it
 * was seen at, then removes that index: one write that succeeds however stale
 * the cached copy is, as long as the finalizer list itself did not change.
 * (A merge patch guarded by the resourceVersion, as before, failed with a 409
 * whenever anything else had written the object since the cache saw it, which
 * for a run Pod the kubelet keeps updating was nearly always.) When the list
 * did change, the test fails and the removal is computed again from a fresh
 * read, once.
 */
import { ignoreNotFound, isInvalid } from './errors.js';
import { jsonPointerSegment, type DeleteOptions, type JsonPatchOp, type KubeClient, type KubeObject, type ObjectMeta, type ResourceRef } from './k8s-client.js';

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

/** Sets one annotation in the same patch as a finalizer's removal. */
export interface AnnotationEdit {
  readonly key: string;
  readonly value: string;
}

function removalOps(obj: WithMeta, finalizer: string, annotation: AnnotationEdit | undefined): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  const index = obj.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (index >= 0) {
    ops.push({ op: 'test', path: `/metadata/finalizers/${index}`, value: finalizer }, { op: 'remove', path: `/metadata/finalizers/${index}` });
  }
  if (annotation !== undefined) {
    ops.push(
      obj.metadata?.annotations === undefined
        ? { op: 'add', path: '/metadata/annotations', value: { [annotation.key]: annotation.value } }
        : { op: 'add', path: `/metadata/annotations/${jsonPointerSegment(annotation.key)}`, value: annotation.value },
    );
  }
  return ops;
}

/**
 * Removes `finalizer` (and sets `annotation`, if given) in one write. `obj`
 * may be a cached copy; see the module comment for how staleness is handled.
 */
export async function removeFinalizer<T extends WithMeta>(
  client: KubeClient,
  ref: ResourceRef<T>,
  obj: T,
  finalizer: string,
  annotation?: AnnotationEdit,
): Promise<void> {
  const namespace = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  let current: T = obj;
  for (let attempt = 0; ; attempt++) {
    const ops = removalOps(current, finalizer, annotation);
    if (ops.length === 0) return;
    try {
      await client.jsonPatch(ref, namespace, name, ops);
      return;
    } catch (err) {
      // 422: the list (or the annotations) changed since `current` was read.
      if (!isInvalid(err) || attempt > 0) throw err;
      current = await client.get(ref, namespace, name);
    }
  }
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
