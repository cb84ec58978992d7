/**
 * Typed helpers for the API calls reconcilers make, on top of {@link KubeRest}.
 *
 * Objects are the JSON the API server serves (see `rest.ts` for why), typed with
 * {@link Wire}: client-node's model types with every `Date` turned back into the
 * RFC 3339 string actually on the wire.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { CoreV1Event, V1Lease, V1ObjectMeta, V1Pod, V1PodDisruptionBudget, V1Secret } from '@kubernetes/client-node';
import type { ClusterConnection } from './kubeconfig.js';
import { KubeRest, type QueryParams } from './rest.js';

/** The Content-Types of the two patch kinds we send. */
const MERGE_PATCH = 'application/merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';

/** A client-node model type as JSON: `Date` fields are strings. */
export type Wire<T> = T extends Date
  ? string
  : T extends readonly (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

export type ObjectMeta = Wire<V1ObjectMeta>;
export type Pod = Wire<V1Pod>;
export type Secret = Wire<V1Secret>;
export type CoreEvent = Wire<CoreV1Event>;
export type Lease = Wire<V1Lease>;
export type PodDisruptionBudget = Wire<V1PodDisruptionBudget>;

/**
 * The least the runtime needs of an object. Structural, so both wire types and
 * client-node's own models fit.
 */
export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
}

/** A custom object whose spec and status the caller interprets. */
export interface CustomObject extends KubeObject {
  readonly metadata?: ObjectMeta;
  readonly spec?: Readonly<Record<string, unknown>>;
  readonly status?: Readonly<Record<string, unknown>>;
}

/** An object to send: apiVersion and kind may be left out, the client sets them from the resource. */
export type NewObject<T extends KubeObject> = Omit<T, 'apiVersion' | 'kind'> & { readonly apiVersion?: string; readonly kind?: string };

/** Where a resource lives in the API. `T` is the object type its calls return. */
export interface ResourceRef<T extends KubeObject> {
  /** Empty for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  /** Type-only marker, never set; it lets `get(PODS, ...)` return a Pod. */
  readonly __type?: T;
}

export function resource<T extends KubeObject>(group: string, version: string, plural: string, kind: string): ResourceRef<T> {
  return { group, version, plural, kind };
}

export const PODS = resource<Pod>('', 'v1', 'pods', 'Pod');
export const SECRETS = resource<Secret>('', 'v1', 'secrets', 'Secret');
export const EVENTS = resource<CoreEvent>('', 'v1', 'events', 'Event');
export const LEASES = resource<Lease>('coordination.k8s.io', 'v1', 'leases', 'Lease');
export const POD_DISRUPTION_BUDGETS = resource<PodDisruptionBudget>('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget');

/** "group/version", or just "version" for the core group. */
export function apiVersionOf(ref: ResourceRef<KubeObject>): string {
  return ref.group === '' ? ref.version : `${ref.group}/${ref.version}`;
}

/** The REST path of a collection, an object, or an object's subresource. */
export function resourcePath(
  ref: ResourceRef<KubeObject>,
  namespace: string | undefined,
  name?: string,
  subresource?: string,
): string {
  let p = ref.group === '' ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
  if (namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${ref.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

/** One RFC 6902 operation. */
export type JsonPatchOp =
  | { readonly op: 'add' | 'replace' | 'test'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'move' | 'copy'; readonly from: string; readonly path: string };

/** Escapes one JSON-pointer segment: label keys contain "/", e.g. `/metadata/labels/app.kubernetes.io~1name`. */
export function jsonPointerSegment(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export interface ListOptions {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit?: number;
  readonly continue?: string;
}

export interface ObjectList<T> {
  readonly items: T[];
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
}

export interface DeleteOptions {
  readonly propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  readonly gracePeriodSeconds?: number;
  /** Delete only this incarnation / this version of the object. */
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string };
}

export interface PatchOptions {
  /** "status" to patch the status subresource. */
  readonly subresource?: 'status' | 'scale';
}

/**
 * API calls for any resource given its {@link ResourceRef}. Every write names the
 * client's field manager.
 * All methods reject with `KubeApiError` on non-2xx answers; see `errors.ts`.
 */
export interface KubeClientOptions {
  /** Named on every write, so `kubectl get -o yaml --show-managed-fields` says who wrote what. */
  readonly fieldManager?: string;
  /** Every request of this client is aborted when it fires (see {@link KubeClient.withSignal}). */
  readonly signal?: AbortSignal;
}

export class KubeClient {
  private readonly fieldManager: string | undefined;
  private readonly signal: AbortSignal | undefined;

  constructor(
    readonly rest: KubeRest,
    private readonly options: KubeClientOptions = {},
  ) {
    this.fieldManager = options.fieldManager;
    this.signal = options.signal;
  }

  /**
   * The same client (connection, field manager), with every request aborted
   * when `signal` fires: a reconcile's API calls end with its queue's shutdown.
   */
  withSignal(signal: AbortSignal): KubeClient {
    return new KubeClient(this.rest, { ...this.options, signal: this.signal === undefined ? signal : AbortSignal.any([this.signal, signal]) });
  }

  /** From a connection (`kubeconfig.ts`) or a client-node `KubeConfig`, which has the same two methods. */
  static fromKubeConfig(kc: ClusterConnection, options: KubeClientOptions = {}): KubeClient {
    return new KubeClient(new KubeRest(kc), options);
  }

  get<T extends KubeObject>(ref: ResourceRef<T>, namespace: string | undefined, name: string): Promise<T> {
    return this.rest.request<T>('GET', resourcePath(ref, namespace, name), { signal: this.signal });
  }

  /** One page of a list; `namespace` undefined lists across all namespaces. */
  list<T extends KubeObject>(ref: ResourceRef<T>, namespace: string | undefined, options: ListOptions = {}): Promise<ObjectList<T>> {
    const query: QueryParams = {
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      limit: options.limit,
      continue: options.continue,
    };
    return this.rest.request<ObjectList<T>>('GET', resourcePath(ref, namespace), { query, signal: this.signal });
  }

  /**
   * Every page of a list, and the resourceVersion to start a watch from.
   * Pages keep a large namespace from arriving as one huge response.
   */
  async listAll<T extends KubeObject>(
    ref: ResourceRef<T>,
    namespace: string | undefined,
    options: Omit<ListOptions, 'continue' | 'limit'> = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.list(ref, namespace, { ...options, limit: 500, continue: token });
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      token = page.metadata?.continue || undefined;
    } while (token !== undefined);
    return { items, resourceVersion };
  }

  /** With `dryRun`, the server validates and admits the object but stores nothing. */
  create<T extends KubeObject>(ref: ResourceRef<T>, namespace: string | undefined, body: NewObject<T>, options: { dryRun?: boolean } = {}): Promise<T> {
    return this.rest.request<T>('POST', resourcePath(ref, namespace), {
      body: { apiVersion: apiVersionOf(ref), kind: ref.kind, ...body },
      query: { fieldManager: this.fieldManager, dryRun: options.dryRun === true ? 'All' : undefined },
      signal: this.signal,
    });
  }

  /** PUT; with `metadata.resourceVersion` set it fails with 409 if someone wrote in between. */
  replace<T extends KubeObject>(ref: ResourceRef<T>, namespace: string | undefined, name: string, body: NewObject<T>): Promise<T> {
    return this.rest.request<T>('PUT', resourcePath(ref, namespace, name), {
      body: { apiVersion: apiVersionOf(ref), kind: ref.kind, ...body },
      query: { fieldManager: this.fieldManager },
      signal: this.signal,
    });
  }

  /** RFC 7386 merge patch: objects merge, `null` deletes, arrays are replaced whole. */
  mergePatch<T extends KubeObject>(
    ref: ResourceRef<T>,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    return this.patch(ref, namespace, name, patch, MERGE_PATCH, options);
  }

  /**
   * RFC 6902 JSON patch. With a `test` op on `/metadata/resourceVersion` it is a
   * compare-and-swap; good for list edits such as removing one finalizer. Note
   * that the server answers a failed `test` with 422 (`isInvalid`), not 409.
   */
  jsonPatch<T extends KubeObject>(
    ref: ResourceRef<T>,
    namespace: string | undefined,
    name: string,
    ops: readonly JsonPatchOp[],
    options: PatchOptions = {},
  ): Promise<T> {
    return this.patch(ref, namespace, name, ops, JSON_PATCH, options);
  }

  /**
   * A container's log as the kubelet serves it (`kubectl logs`): the bytes it
   * printed, from the first; with `follow`, then whatever it prints next,
   * until it ends. A byte stream the caller reads and ends by aborting `signal`.
   */
  podLog(namespace: string, name: string, options: { readonly container: string; readonly follow: boolean }, signal: AbortSignal): Promise<IncomingMessage> {
    const both = this.signal === undefined ? signal : AbortSignal.any([this.signal, signal]);
    return this.rest.stream(`${resourcePath(PODS, namespace, name)}/log`, { container: options.container, follow: options.follow ? true : undefined }, both);
  }

  /** Resolves once the API server accepted the deletion (finalizers may keep the object a while). */
  async delete(ref: ResourceRef<KubeObject>, namespace: string | undefined, name: string, options: DeleteOptions = {}): Promise<void> {
    await this.rest.request<unknown>('DELETE', resourcePath(ref, namespace, name), {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', ...options },
      signal: this.signal,
    });
  }

  private patch<T extends KubeObject>(
    ref: ResourceRef<T>,
    namespace: string | undefined,
    name: string,
    body: unknown,
    contentType: typeof MERGE_PATCH | typeof JSON_PATCH,
    options: PatchOptions,
  ): Promise<T> {
    return this.rest.request<T>('PATCH', resourcePath(ref, namespace, name, options.subresource), {
      body,
      contentType,
      query: { fieldManager: this.fieldManager },
      signal: this.signal,
    });
  }
}
