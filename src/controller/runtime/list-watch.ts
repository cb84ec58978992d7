/**
 * The production {@link ListWatchSource}: paged LIST through {@link KubeClient}
 * and WATCH through client-node's `Watch`, which streams the server's JSON lines.
 *
 * @module
 */
import { Watch } from '@kubernetes/client-node';
import type { ListWatchSource } from './informer.js';
import { resourcePath, type KubeClient, type KubeObject, type ResourceRef } from './k8s-client.js';

export interface ListWatchOptions {
  /** Only objects matching this label selector, e.g. `app.kubernetes.io/managed-by=kube-workerpool-controller`. */
  readonly labelSelector?: string;
}

/** A source for `new Informer(kubeListWatch(client, PODS, {labelSelector}), {...})`. */
export function kubeListWatch<T extends KubeObject>(
  client: KubeClient,
  ref: ResourceRef<T>,
  options: ListWatchOptions = {},
): ListWatchSource<T> {
  const watcher = new Watch(client.rest.kubeConfig);
  return {
    list: (namespace) => client.listAll(ref, namespace, { labelSelector: options.labelSelector }),
    async watch(namespace, resourceVersion, timeoutSeconds, onEvent, onDone) {
      const controller = await watcher.watch(
        resourcePath(ref, namespace),
        {
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector: options.labelSelector,
        },
        (phase: string, object: unknown) => onEvent(phase, object),
        (err: unknown) => onDone(err ?? undefined),
      );
      return () => controller.abort();
    },
  };
}
