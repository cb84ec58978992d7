/**
 * The production {@link ListWatchSource}: paged LIST through {@link KubeClient}
 * and WATCH through {@link KubeRest.watch}, which streams the server's JSON lines.
 *
 * @module
 */
import type { ListWatchSource, WatchEventType } from './informer.js';
import { resourcePath, type KubeClient, type KubeObject, type ResourceRef } from './k8s-client.js';

export interface ListWatchOptions {
  /** Only objects matching this label selector, e.g. `app.kubernetes.io/managed-by=kube-workerpool-controller`. */
  readonly labelSelector?: string;
  /** Only objects matching this field selector, e.g. `metadata.name=my-secret`. */
  readonly fieldSelector?: string;
}

/** A source for `new Informer(kubeListWatch(client, PODS, {labelSelector}), {...})`. */
export function kubeListWatch<T extends KubeObject>(
  client: KubeClient,
  ref: ResourceRef<T>,
  options: ListWatchOptions = {},
): ListWatchSource<T> {
  return {
    list: (namespace) => client.listAll(ref, namespace, { labelSelector: options.labelSelector, fieldSelector: options.fieldSelector }),
    watch: (namespace, resourceVersion, timeoutSeconds, onEvent, onDone) =>
      client.rest.watch(
        resourcePath(ref, namespace),
        { resourceVersion, allowWatchBookmarks: true, timeoutSeconds, labelSelector: options.labelSelector, fieldSelector: options.fieldSelector },
        (type, object) => onEvent(type as WatchEventType, object),
        onDone,
      ),
  };
}
