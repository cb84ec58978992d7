/**
 * A typed informer: an in-memory, indexed mirror of one resource kept current by
 * LIST + WATCH, with add/update/delete notifications.
 *
 * Why not client-node's `makeInformer`: in 1.4 its ListWatch stops for good on
 * any watch error (it only restarts after a clean close or a 410), does not ask
 * for bookmarks, and mixes typed list results with raw watch objects. This one
 * owns the loop:
 *
 * - LIST (paged), then WATCH from the list's resourceVersion with bookmarks, so
 *   an idle watch keeps a fresh resourceVersion and reconnects never relist;
 * - a watch that ends normally (the server's timeout) resumes from the last
 *   resourceVersion at once - a few requests an hour per scope when idle;
 * - 410 Gone / "too old resource version" relists and emits the difference
 *   (objects missing from the new list are reported deleted);
 * - any other error or unexpected end restarts with capped exponential back-off
 *   and jitter, forever, until {@link Informer.stop}. There is no periodic relist.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import type { KubeObject } from './k8s-client.js';
import { silentLogger, type Logger } from './log.js';

/** What a watch stream delivers per line; `object` is a Status for ERROR events. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/**
 * The transport an informer runs on: the API server in production
 * (`kubeListWatch`), a scripted fake in unit tests. Bound to one resource and
 * label selector; `namespace` undefined means all namespaces.
 */
export interface ListWatchSource<T extends KubeObject> {
  list(namespace: string | undefined): Promise<{ items: T[]; resourceVersion: string }>;
  /**
   * Opens a watch from `resourceVersion`. `onDone` is called exactly once, with
   * an error or undefined for a normal end. Resolves to a function that aborts
   * the watch (after which `onDone` may still be called; it is ignored).
   */
  watch(
    namespace: string | undefined,
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void>;
}

/** Notifications. Handlers run synchronously, in order; objects are shared and must not be mutated. */
export interface EventHandler<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  /** For logs, e.g. "workers". */
  readonly name: string;
  /** Watch only these namespaces (one list+watch each); empty or absent: all namespaces. */
  readonly namespaces?: readonly string[];
  readonly logger?: Logger;
  /** Restart back-off. Default 500ms doubling to 30s, 50% jitter. */
  readonly backoff?: BackoffPolicy;
  /** Server-side watch timeout per request. Default random 5-10 min, like client-go, to spread reconnects. */
  readonly watchTimeoutSeconds?: () => number;
  /** A watch that lasted this long (or delivered an event) was healthy and resets the back-off. Default 10s. */
  readonly healthyWatchMs?: number;
}

export const DEFAULT_INFORMER_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 30_000, jitter: 0.5 };

/** "namespace/name", or "name" for cluster-scoped objects: the store and work-queue key. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? '';
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by {@link objectKey}. */
export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

type IndexFn<T> = (obj: T) => readonly string[];

interface Index<T> {
  readonly fn: IndexFn<T>;
  readonly entries: Map<string, Set<string>>;
}

interface WatchOutcome {
  readonly error: unknown;
  readonly gone: boolean;
  readonly healthy: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function statusCodeOf(err: unknown): number | undefined {
  if (!isRecord(err)) return undefined;
  const c = err.statusCode ?? err.code;
  return typeof c === 'number' ? c : undefined;
}

/**
 * The informer. Create, register handlers and indexes, {@link Informer.start}, then
 * {@link Informer.waitForSync} before trusting {@link Informer.list}. One-shot: a
 * stopped informer is not restarted; make a new one.
 */
export class Informer<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  private readonly indexes = new Map<string, Index<T>>();
  private readonly handlers = new Set<EventHandler<T>>();
  private readonly scopes: readonly (string | undefined)[];
  private readonly synced = new Set<string | undefined>();
  private readonly syncWaiters = new Set<{ resolve: () => void; reject: (e: unknown) => void }>();
  private readonly aborts = new Set<() => void>();
  private readonly stopController = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly log: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly watchTimeoutSeconds: () => number;
  private readonly healthyWatchMs: number;

  constructor(
    private readonly source: ListWatchSource<T>,
    options: InformerOptions,
  ) {
    const ns = options.namespaces ?? [];
    this.scopes = ns.length === 0 ? [undefined] : [...new Set(ns)];
    this.log = (options.logger ?? silentLogger).with({ informer: options.name });
    this.backoff = options.backoff ?? DEFAULT_INFORMER_BACKOFF;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? (() => 300 + Math.floor(Math.random() * 300));
    this.healthyWatchMs = options.healthyWatchMs ?? 10_000;
  }

  /**
   * Registers handlers. Objects already in the store are replayed to `onAdd`, so a
   * late subscriber sees the same world as an early one.
   * @returns a function that unregisters them.
   */
  addEventHandler(handler: EventHandler<T>): () => void {
    this.handlers.add(handler);
    for (const obj of this.store.values()) this.call(handler, 'onAdd', obj);
    return () => this.handlers.delete(handler);
  }

  /** Adds an index: `fn` returns the values an object is found under (none to skip it). */
  addIndex(name: string, fn: IndexFn<T>): void {
    if (this.indexes.has(name)) throw new Error(`index ${name} already exists`);
    const index: Index<T> = { fn, entries: new Map() };
    this.indexes.set(name, index);
    for (const [key, obj] of this.store) this.indexAdd(index, key, obj);
  }

  /** Indexes objects by the value of `label`, for {@link Informer.byLabel}. Idempotent. */
  indexByLabel(label: string): void {
    const name = `label:${label}`;
    if (this.indexes.has(name)) return;
    this.addIndex(name, (obj) => {
      const v = obj.metadata?.labels?.[label];
      return v === undefined ? [] : [v];
    });
  }

  /** Objects indexed under `value`, optionally only those in `namespace`. */
  byIndex(name: string, value: string, namespace?: string): T[] {
    const index = this.indexes.get(name);
    if (!index) throw new Error(`no index named ${name}`);
    const out: T[] = [];
    for (const key of index.entries.get(value) ?? []) {
      const obj = this.store.get(key);
      if (obj && (namespace === undefined || obj.metadata?.namespace === namespace)) out.push(obj);
    }
    return out;
  }

  /** Objects whose `label` equals `value` (e.g. the Workers of one pool); needs {@link Informer.indexByLabel}. */
  byLabel(label: string, value: string, namespace?: string): T[] {
    return this.byIndex(`label:${label}`, value, namespace);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.store.get(key);
  }

  /** All cached objects, or those matching `filter`. */
  list(filter?: (obj: T) => boolean): T[] {
    const all = [...this.store.values()];
    return filter ? all.filter(filter) : all;
  }

  get size(): number {
    return this.store.size;
  }

  /** True once every namespace has been listed at least once. */
  hasSynced(): boolean {
    return this.synced.size === this.scopes.length;
  }

  /** Resolves once {@link Informer.hasSynced}; rejects if the informer stops first or `signal` aborts. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.hasSynced()) return Promise.resolve();
    if (this.stopController.signal.aborted) return Promise.reject(new Error('informer stopped'));
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = (): void => {
        this.syncWaiters.delete(waiter);
        reject(signal?.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.add(waiter);
    });
  }

  /** Starts one list+watch loop per namespace (or one for the cluster). */
  start(): void {
    if (this.loops.length > 0 || this.stopController.signal.aborted) throw new Error('informer already started');
    this.loops = this.scopes.map((ns) => this.runScope(ns));
  }

  /** Closes the watches and waits for the loops to end. The store keeps its last contents. */
  async stop(): Promise<void> {
    this.stopController.abort();
    for (const abort of this.aborts) abort();
    for (const w of this.syncWaiters) w.reject(new Error('informer stopped'));
    this.syncWaiters.clear();
    await Promise.all(this.loops);
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async runScope(namespace: string | undefined): Promise<void> {
    const log = namespace === undefined ? this.log : this.log.with({ namespace });
    let resourceVersion = '';
    let failures = 0;
    // An expired resourceVersion earns one immediate relist; a second expiry in a
    // row without a healthy watch in between (a confused server) backs off.
    let expiredBefore = false;
    while (!this.stopped) {
      let retryNow = false;
      try {
        if (resourceVersion === '') {
          const listed = await this.source.list(namespace);
          if (this.stopped) return;
          this.replace(namespace, listed.items);
          resourceVersion = listed.resourceVersion;
          this.markSynced(namespace);
          log.debug('listed', { count: listed.items.length, resourceVersion });
        }
        const outcome = await this.watchOnce(namespace, resourceVersion, (rv) => (resourceVersion = rv));
        if (this.stopped) return;
        if (outcome.healthy) failures = 0;
        if (outcome.gone) {
          log.info('watch resourceVersion expired; relisting', { resourceVersion });
          resourceVersion = '';
        }
        if (outcome.error === undefined) {
          log.debug('watch ended; resuming', { resourceVersion });
        } else if (!outcome.gone) {
          log.warn('watch failed', { error: outcome.error });
        }
        // A healthy watch that simply ended resumes at once; anything else waits, so
        // a server that drops every watch is not hammered.
        retryNow = outcome.gone ? outcome.healthy || !expiredBefore : outcome.healthy && outcome.error === undefined;
        expiredBefore = outcome.gone && !outcome.healthy;
      } catch (error) {
        if (this.stopped) return;
        log.warn('list failed', { error });
      }
      if (retryNow) continue;
      const delayMs = backoffDelay(this.backoff, failures++);
      log.debug('restarting after back-off', { delayMs: Math.round(delayMs), failures });
      try {
        await sleep(delayMs, undefined, { signal: this.stopController.signal });
      } catch {
        return; // stopped
      }
    }
  }

  /** Runs one watch request to its end. `onResourceVersion` tracks progress for the resume. */
  private watchOnce(
    namespace: string | undefined,
    resourceVersion: string,
    onResourceVersion: (rv: string) => void,
  ): Promise<WatchOutcome> {
    const timeoutSeconds = this.watchTimeoutSeconds();
    const started = performance.now();
    let events = 0;
    let gone = false;
    let streamError: unknown;
    return new Promise<WatchOutcome>((resolve) => {
      let finished = false;
      let abort: (() => void) | undefined;
      const finish = (error: unknown): void => {
        if (finished) return;
        finished = true;
        clearTimeout(watchdog);
        if (abort) {
          this.aborts.delete(abort);
          abort();
        }
        const lasted = performance.now() - started;
        resolve({
          error: error ?? streamError,
          gone: gone || statusCodeOf(error) === 410,
          healthy: events > 0 || lasted >= this.healthyWatchMs,
        });
      };
      // If the server's own timeout never reaches us (a dead connection), give up on the stream ourselves.
      const watchdog = setTimeout(
        () => finish(new Error(`watch silent past its ${timeoutSeconds}s timeout`)),
        (timeoutSeconds + 30) * 1000,
      );
      const onEvent = (type: string, object: unknown): void => {
        if (finished) return;
        if (type === 'ERROR') {
          const code = isRecord(object) ? object.code : undefined;
          if (code === 410) gone = true;
          else streamError = Object.assign(new Error(`watch error: ${JSON.stringify(object)}`), { statusCode: code });
          finish(undefined);
          return;
        }
        events++;
        const obj = object as T;
        const rv = obj.metadata?.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') this.upsert(obj);
        else if (type === 'DELETED') this.remove(objectKey(obj), obj);
        if (rv) onResourceVersion(rv);
      };
      this.source.watch(namespace, resourceVersion, timeoutSeconds, onEvent, (err) => finish(err ?? undefined)).then(
        (abortFn) => {
          if (finished || this.stopped) {
            abortFn();
            finish(undefined);
            return;
          }
          abort = abortFn;
          this.aborts.add(abortFn);
        },
        (err: unknown) => finish(err ?? new Error('watch failed to start')),
      );
    });
  }

  /** Makes the store's view of one scope equal `items`, emitting the differences. */
  private replace(namespace: string | undefined, items: readonly T[]): void {
    const fresh = new Set(items.map((o) => objectKey(o)));
    for (const [key, obj] of [...this.store]) {
      const inScope = namespace === undefined || obj.metadata?.namespace === namespace;
      if (inScope && !fresh.has(key)) this.remove(key, obj);
    }
    for (const obj of items) this.upsert(obj);
  }

  private upsert(obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    // Relists return unchanged objects; only real changes are news.
    if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    if (old) for (const index of this.indexes.values()) this.indexRemove(index, key, old);
    this.store.set(key, obj);
    for (const index of this.indexes.values()) this.indexAdd(index, key, obj);
    for (const h of this.handlers) {
      if (old) this.call(h, 'onUpdate', old, obj);
      else this.call(h, 'onAdd', obj);
    }
  }

  private remove(key: string, last: T): void {
    const old = this.store.get(key);
    if (!old) return;
    this.store.delete(key);
    for (const index of this.indexes.values()) this.indexRemove(index, key, old);
    for (const h of this.handlers) this.call(h, 'onDelete', last);
  }

  private indexAdd(index: Index<T>, key: string, obj: T): void {
    for (const value of index.fn(obj)) {
      let keys = index.entries.get(value);
      if (!keys) index.entries.set(value, (keys = new Set()));
      keys.add(key);
    }
  }

  private indexRemove(index: Index<T>, key: string, obj: T): void {
    for (const value of index.fn(obj)) {
      const keys = index.entries.get(value);
      keys?.delete(key);
      if (keys?.size === 0) index.entries.delete(value);
    }
  }

  private markSynced(namespace: string | undefined): void {
    this.synced.add(namespace);
    if (!this.hasSynced()) return;
    for (const w of this.syncWaiters) w.resolve();
    this.syncWaiters.clear();
  }

  private call(h: EventHandler<T>, kind: 'onAdd' | 'onDelete', obj: T): void;
  private call(h: EventHandler<T>, kind: 'onUpdate', oldObj: T, newObj: T): void;
  private call(h: EventHandler<T>, kind: keyof EventHandler<T>, a: T, b?: T): void {
    try {
      if (kind === 'onUpdate') h.onUpdate?.(a, b as T);
      else h[kind]?.(a);
    } catch (error) {
      // One broken handler must not stop the cache from following the cluster.
      this.log.error('event handler threw', { handler: kind, object: objectKey(a), error });
    }
  }
}
