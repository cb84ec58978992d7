/**
 * A watch kept open over a test's whole window, for claims like "only one Pod
 * ever existed" or "the Worker was never deleted": a final list misses what
 * came and went in between, a watch does not.
 */
import { Informer } from '../../src/runtime/informer.js';
import type { KubeClient, KubeObject, ResourceRef } from '../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../src/runtime/list-watch.js';

export interface SeenEvent<T> {
  readonly type: 'added' | 'updated' | 'deleted';
  readonly object: T;
}

export class ObjectWatch<T extends KubeObject> {
  readonly events: SeenEvent<T>[] = [];
  private constructor(private readonly informer: Informer<T>) {}

  /** Lists, then watches, `ref` in `namespace` (matching `labelSelector`, if given); resolves once the list is in. */
  static async start<T extends KubeObject>(client: KubeClient, ref: ResourceRef<T>, namespace: string, labelSelector?: string): Promise<ObjectWatch<T>> {
    const informer = new Informer<T>(kubeListWatch(client, ref, { labelSelector }), { name: 'test-watch', namespaces: [namespace] });
    const watch = new ObjectWatch(informer);
    informer.addEventHandler({
      onAdd: (o) => watch.events.push({ type: 'added', object: o }),
      onUpdate: (_old, o) => watch.events.push({ type: 'updated', object: o }),
      onDelete: (o) => watch.events.push({ type: 'deleted', object: o }),
    });
    informer.start();
    await informer.waitForSync();
    return watch;
  }

  /** Every UID seen so far, in order of first sight. */
  uids(): string[] {
    return [...new Set(this.events.map((e) => e.object.metadata?.uid ?? ''))];
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }
}
