/**
 * Owner references: what the garbage collector follows and what tells whose
 * child an object is. One builder, so every owned object carries the same
 * `controller` and `blockOwnerDeletion` settings.
 */
import type { ObjectMeta } from './k8s-client.js';

type OwnerReference = NonNullable<ObjectMeta['ownerReferences']>[number];

/** The least an owner must have: its type and identity. */
export interface Owner {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name?: string; readonly uid?: string };
}

/** The controller reference to `owner`: the owner is deleted only after this object (blockOwnerDeletion). */
export function controllerReference(owner: Owner): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The name of the object's owner of this kind, if it has one. */
export function ownerName(obj: { readonly metadata?: ObjectMeta }, kind: string): string | undefined {
  return obj.metadata?.ownerReferences?.find((o) => o.kind === kind)?.name;
}
