/**
 * The Secrets the controller keeps in memory, and only those: its Workers'
 * own credentials (selected by their label) and the Secrets WorkerPools
 * reference (one watch per referenced Secret, selected by name). A Secret
 * nobody references is never listed, watched or held, so the controller's
 * memory does not grow with a cluster's Secrets, and a Secret's content does
 * not sit in this process unless a pool needs it.
 *
 * The referenced set follows the pools: {@link SecretCache.track} starts a
 * watch for each newly referenced Secret and stops those no pool names any
 * more. A Secret referenced moments ago may not be in the cache yet; the
 * pool's credentials reader looks it up live then (`backend/access.ts`).
 *
 * @module
 */
import { LABEL_MANAGED_BY, LABEL_WORKER_SECRET, MANAGED_BY_VALUE } from '../api/constants.js';
import type { WorkerPoolObject } from '../api/types.js';
import { Informer, type EventHandler } from '../runtime/informer.js';
import { SECRETS, type KubeClient, type Secret } from '../runtime/k8s-client.js';
import { kubeListWatch } from '../runtime/list-watch.js';
import type { Logger } from '../runtime/log.js';
import { referencedSecrets } from './backend/credentials.js';

/** `namespace/name` of every Secret the pools reference. */
export function referencedSecretKeys(pools: readonly WorkerPoolObject[]): Set<string> {
  const keys = new Set<string>();
  for (const pool of pools) {
    const refs = referencedSecrets(pool.spec);
    for (const ref of [refs.token, refs.privateKey]) if (ref !== undefined) keys.add(`${pool.metadata.namespace ?? 'default'}/${ref.name}`);
  }
  return keys;
}

export class SecretCache {
  private readonly owned: Informer<Secret>;
  private readonly referenced = new Map<string, Informer<Secret>>();
  private readonly handlers = new Set<EventHandler<Secret>>();
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly namespaces: readonly string[],
    private readonly log: Logger,
  ) {
    this.owned = new Informer<Secret>(kubeListWatch(client, SECRETS, { labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_WORKER_SECRET}` }), {
      name: 'worker-secrets',
      namespaces,
      logger: log,
    });
  }

  /** Starts the watch of the Workers' Secrets. */
  start(): void {
    this.owned.start();
  }

  /** Resolves once the Workers' Secrets and every tracked referenced Secret are listed. */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([this.owned, ...this.referenced.values()].map((i) => i.waitForSync(signal)));
  }

  /**
   * Watches exactly these referenced Secrets (`namespace/name`): new ones
   * start, ones no longer referenced stop and leave the cache.
   */
  track(keys: ReadonlySet<string>): void {
    if (this.stopped) return;
    for (const [key, informer] of this.referenced) {
      if (keys.has(key)) continue;
      this.referenced.delete(key);
      void informer.stop();
    }
    for (const key of keys) {
      if (this.referenced.has(key)) continue;
      const slash = key.indexOf('/');
      const namespace = key.slice(0, slash);
      // Outside the watched namespaces the controller has no access, and no pool there is reconciled.
      if (this.namespaces.length > 0 && !this.namespaces.includes(namespace)) continue;
      const informer = new Informer<Secret>(kubeListWatch(this.client, SECRETS, { fieldSelector: `metadata.name=${key.slice(slash + 1)}` }), {
        name: `secret ${key}`,
        namespaces: [namespace],
        logger: this.log,
      });
      for (const h of this.handlers) informer.addEventHandler(h);
      this.referenced.set(key, informer);
      informer.start();
    }
  }

  get(namespace: string | undefined, name: string): Secret | undefined {
    return this.owned.get(namespace, name) ?? this.referenced.get(`${namespace ?? ''}/${name}`)?.get(namespace, name);
  }

  /** Handlers for both kinds; replays what is cached, like an informer. */
  addEventHandler(handler: EventHandler<Secret>): void {
    this.handlers.add(handler);
    this.owned.addEventHandler(handler);
    for (const informer of this.referenced.values()) informer.addEventHandler(handler);
  }

  /** Secrets held in memory. */
  get size(): number {
    let n = this.owned.size;
    for (const informer of this.referenced.values()) n += informer.size;
    return n;
  }

  /** Referenced Secrets watched. */
  get trackedCount(): number {
    return this.referenced.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.owned.stop(), ...[...this.referenced.values()].map((i) => i.stop())]);
    this.referenced.clear();
  }
}
