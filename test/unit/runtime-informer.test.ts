import { afterEach, describe, expect, it } from 'vitest';
import { Informer, objectKey, splitKey, type ListWatchSource } from '../../src/runtime/informer.js';
import type { KubeObject } from '../../src/runtime/k8s-client.js';

interface Obj extends KubeObject {
  readonly metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string> };
  readonly data?: string;
}

interface OpenWatch {
  readonly namespace: string | undefined;
  readonly onEvent: (type: string, object: unknown) => void;
  readonly onDone: (err: unknown) => void;
  closed: boolean;
}

/**
 * A miniature API server: a versioned object set with an event log, so watches can
 * resume from any resourceVersion, expire (410) after compaction, or be cut.
 */
class FakeServer implements ListWatchSource<Obj> {
  private rv = 100;
  private compactedRv = 0;
  readonly objects = new Map<string, Obj>();
  private readonly log: { rv: number; type: string; obj: Obj }[] = [];
  readonly open: OpenWatch[] = [];
  listCalls = 0;
  watchCalls: { namespace: string | undefined; resourceVersion: string }[] = [];
  failLists = 0;
  failWatchStarts = 0;
  httpGoneOnce = false;

  put(namespace: string, name: string, extra: { labels?: Record<string, string>; data?: string } = {}): Obj {
    const key = `${namespace}/${name}`;
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    const obj: Obj = { metadata: { name, namespace, resourceVersion: String(++this.rv), labels: extra.labels }, data: extra.data };
    this.objects.set(key, obj);
    this.emit(type, obj);
    return obj;
  }

  del(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const old = this.objects.get(key);
    if (!old) throw new Error(`no ${key}`);
    this.objects.delete(key);
    this.emit('DELETED', { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } });
  }

  bookmark(): void {
    this.rv++;
    for (const w of this.live()) w.onEvent('BOOKMARK', { metadata: { resourceVersion: String(this.rv) } });
  }

  /** Forgets history: watches from older versions now get 410. */
  compact(): void {
    this.compactedRv = this.rv;
  }

  /** Expires every open watch in-stream (ERROR 410), as after etcd compaction. */
  expire(): void {
    this.compact();
    for (const w of this.live()) {
      w.closed = true;
      w.onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
      w.onDone(undefined);
    }
  }

  /** Drops every open watch connection, as a network failure or apiserver restart would. */
  cut(err: unknown = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })): void {
    for (const w of this.live()) {
      w.closed = true;
      w.onDone(err);
    }
  }

  /** Ends every open watch cleanly, as the server's watch timeout does. */
  endCleanly(): void {
    for (const w of this.live()) {
      w.closed = true;
      w.onDone(undefined);
    }
  }

  live(): OpenWatch[] {
    return this.open.filter((w) => !w.closed);
  }

  async list(namespace: string | undefined): Promise<{ items: Obj[]; resourceVersion: string }> {
    this.listCalls++;
    if (this.failLists > 0) {
      this.failLists--;
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    }
    const items = [...this.objects.values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace);
    return { items, resourceVersion: String(this.rv) };
  }

  async watch(
    namespace: string | undefined,
    resourceVersion: string,
    _timeoutSeconds: number,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    this.watchCalls.push({ namespace, resourceVersion });
    if (this.failWatchStarts > 0) {
      this.failWatchStarts--;
      throw new Error('exec plugin failed');
    }
    const w: OpenWatch = { namespace, onEvent, onDone, closed: false };
    if (this.httpGoneOnce) {
      this.httpGoneOnce = false;
      w.closed = true;
      onDone(Object.assign(new Error('Gone'), { statusCode: 410 }));
      return () => undefined;
    }
    this.open.push(w);
    const from = Number(resourceVersion);
    if (from < this.compactedRv) {
      onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
      w.closed = true;
      onDone(undefined);
    } else {
      for (const e of this.log) if (e.rv > from && this.inScope(w, e.obj)) onEvent(e.type, e.obj);
    }
    return () => {
      if (!w.closed) {
        w.closed = true;
        onDone(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      }
    };
  }

  private inScope(w: OpenWatch, obj: Obj): boolean {
    return w.namespace === undefined || w.namespace === obj.metadata.namespace;
  }

  private emit(type: string, obj: Obj): void {
    this.log.push({ rv: this.rv, type, obj });
    for (const w of this.live()) if (this.inScope(w, obj)) w.onEvent(type, obj);
  }
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

const informers: Informer<Obj>[] = [];
function makeInformer(server: FakeServer, namespaces?: string[]): { informer: Informer<Obj>; events: string[] } {
  const informer = new Informer<Obj>(server, {
    name: 'test',
    namespaces,
    backoff: { baseMs: 1, maxMs: 10, jitter: 0 },
  });
  const events: string[] = [];
  informer.addEventHandler({
    onAdd: (o) => events.push(`add ${objectKey(o)}`),
    onUpdate: (a, b) => events.push(`update ${objectKey(b)} ${a.metadata.resourceVersion}->${b.metadata.resourceVersion}`),
    onDelete: (o) => events.push(`delete ${objectKey(o)}`),
  });
  informers.push(informer);
  return { informer, events };
}

afterEach(async () => {
  await Promise.all(informers.splice(0).map((i) => i.stop()));
});

describe('Informer', () => {
  it('lists, then watches from the list resourceVersion', async () => {
    const server = new FakeServer();
    server.put('a', 'one');
    server.put('b', 'two');
    const { informer, events } = makeInformer(server);
    expect(informer.hasSynced()).toBe(false);
    informer.start();
    await informer.waitForSync();
    expect(informer.list().map(objectKey).sort()).toEqual(['a/one', 'b/two']);
    expect(server.watchCalls).toEqual([{ namespace: undefined, resourceVersion: '102' }]);
    await until(() => server.live().length === 1);

    server.put('a', 'three');
    server.put('a', 'one', { data: 'changed' });
    expect(informer.get('a', 'one')?.data).toBe('changed');
    expect(events).toEqual(['add a/one', 'add b/two', 'add a/three', 'update a/one 101->104']);
  });

  it('applies DELETED events to the store and the indexes', async () => {
    const server = new FakeServer();
    server.put('ns', 'w1', { labels: { pool: 'p1' } });
    server.put('ns', 'w2', { labels: { pool: 'p1' } });
    server.put('other', 'w3', { labels: { pool: 'p1' } });
    const { informer, events } = makeInformer(server);
    informer.indexByLabel('pool');
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    expect(informer.byLabel('pool', 'p1').length).toBe(3);
    expect(informer.byLabel('pool', 'p1', 'ns').map(objectKey).sort()).toEqual(['ns/w1', 'ns/w2']);

    server.del('ns', 'w1');
    server.put('ns', 'w2', { labels: { pool: 'p2' } });
    expect(informer.get('ns', 'w1')).toBeUndefined();
    expect(informer.byLabel('pool', 'p1').map(objectKey).sort()).toEqual(['other/w3']);
    expect(informer.byLabel('pool', 'p2').map(objectKey)).toEqual(['ns/w2']);
    expect(events.slice(-2)).toEqual(['delete ns/w1', 'update ns/w2 102->105']);
  });

  it('resumes a cut watch from the last resourceVersion without relisting', async () => {
    const server = new FakeServer();
    server.put('ns', 'a');
    const { informer, events } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    server.put('ns', 'b');
    server.bookmark();

    server.cut();
    server.put('ns', 'c'); // happens while we are disconnected
    await until(() => informer.get('ns', 'c') !== undefined);
    expect(server.listCalls).toBe(1);
    expect(server.watchCalls.map((w) => w.resourceVersion)).toEqual(['101', '103']);
    expect(events).toEqual(['add ns/a', 'add ns/b', 'add ns/c']);
  });

  it('resumes after the server ends the watch normally', async () => {
    const server = new FakeServer();
    const { informer } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    server.put('ns', 'a'); // the watch delivered something: it was healthy
    server.endCleanly();
    await until(() => server.live().length === 1);
    server.put('ns', 'b');
    expect(informer.list().length).toBe(2);
    expect(server.listCalls).toBe(1);
  });

  it('resumes at once after a healthy watch, but backs off when watches fail at once', async () => {
    const server = new FakeServer();
    const informer = new Informer<Obj>(server, { name: 'slow', backoff: { baseMs: 600_000, maxMs: 600_000, jitter: 0 } });
    informers.push(informer);
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    server.put('ns', 'a');
    server.endCleanly();
    server.put('ns', 'b');
    server.expire();
    await until(() => server.live().length === 1 && server.listCalls === 2);
    expect(informer.size).toBe(2);
    // A watch that dies before delivering anything now waits out the (10 min) back-off.
    server.cut();
    await new Promise((r) => setTimeout(r, 50));
    expect(server.watchCalls.length).toBe(3);
    expect(server.live().length).toBe(0);
  });

  it('relists on 410 and emits what changed while it was away, deletions included', async () => {
    const server = new FakeServer();
    server.put('ns', 'stays');
    server.put('ns', 'changes');
    server.put('ns', 'goes');
    const { informer, events } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);

    server.cut();
    server.del('ns', 'goes');
    server.put('ns', 'changes', { data: 'x' });
    server.put('ns', 'new');
    server.compact();
    await until(() => server.listCalls === 2 && server.live().length === 1);

    expect(informer.list().map(objectKey).sort()).toEqual(['ns/changes', 'ns/new', 'ns/stays']);
    expect(events.slice(3)).toEqual(['delete ns/goes', 'update ns/changes 102->105', 'add ns/new']);
  });

  it('relists when the watch request itself is answered 410', async () => {
    const server = new FakeServer();
    server.put('ns', 'a');
    const { informer } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    server.httpGoneOnce = true;
    server.cut();
    await until(() => server.listCalls === 2 && server.live().length === 1);
    server.put('ns', 'b');
    expect(informer.size).toBe(2);
  });

  it('keeps retrying failed lists and failed watch starts', async () => {
    const server = new FakeServer();
    server.put('ns', 'a');
    server.failLists = 3;
    server.failWatchStarts = 2;
    const { informer } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    expect(server.listCalls).toBe(4);
    await until(() => server.live().length === 1);
    expect(server.watchCalls.length).toBe(3);
    server.put('ns', 'b');
    expect(informer.size).toBe(2);
  });

  it('watches each listed namespace separately and relists only its own', async () => {
    const server = new FakeServer();
    server.put('a', 'x');
    server.put('b', 'y');
    server.put('c', 'ignored');
    const { informer, events } = makeInformer(server, ['a', 'b']);
    informer.start();
    await informer.waitForSync();
    expect(informer.list().map(objectKey).sort()).toEqual(['a/x', 'b/y']);
    await until(() => server.live().length === 2);

    server.put('c', 'still-ignored');
    server.cut();
    server.del('a', 'x');
    server.compact();
    await until(() => server.listCalls === 4 && server.live().length === 2);
    expect(informer.list().map(objectKey)).toEqual(['b/y']);
    expect(events).toEqual(['add a/x', 'add b/y', 'delete a/x']);
  });

  it('costs nothing while idle: one list and one watch', async () => {
    const server = new FakeServer();
    const { informer } = makeInformer(server);
    informer.start();
    await informer.waitForSync();
    await new Promise((r) => setTimeout(r, 100));
    expect(server.listCalls).toBe(1);
    expect(server.watchCalls.length).toBe(1);
  });

  it('survives a throwing handler and replays the store to late handlers', async () => {
    const server = new FakeServer();
    server.put('ns', 'a');
    const { informer } = makeInformer(server);
    informer.addEventHandler({
      onAdd: () => {
        throw new Error('handler bug');
      },
    });
    informer.start();
    await informer.waitForSync();
    await until(() => server.live().length === 1);
    server.put('ns', 'b');
    expect(informer.size).toBe(2);
    const late: string[] = [];
    informer.addEventHandler({ onAdd: (o) => late.push(objectKey(o)) });
    expect(late.sort()).toEqual(['ns/a', 'ns/b']);
  });

  it('waitForSync gives up when its signal aborts, before or while waiting', async () => {
    const server = new FakeServer();
    server.failLists = 1_000_000;
    const { informer } = makeInformer(server);
    informer.start();
    await expect(informer.waitForSync(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    const controller = new AbortController();
    const waiting = informer.waitForSync(controller.signal);
    controller.abort(new Error('later'));
    await expect(waiting).rejects.toThrow('later');
  });

  it('stop closes the watch, and waitForSync fails if it never synced', async () => {
    const server = new FakeServer();
    server.failLists = 1_000_000;
    const { informer } = makeInformer(server);
    informer.start();
    const sync = informer.waitForSync();
    await until(() => server.listCalls > 2);
    await informer.stop();
    await expect(sync).rejects.toThrow('informer stopped');

    const ok = new FakeServer();
    const second = makeInformer(ok).informer;
    second.start();
    await second.waitForSync();
    await until(() => ok.live().length === 1);
    await second.stop();
    expect(ok.live().length).toBe(0);
  });
});

describe('keys', () => {
  it('splits what objectKey joins', () => {
    expect(splitKey('ns/name')).toEqual({ namespace: 'ns', name: 'name' });
    expect(splitKey('cluster-scoped')).toEqual({ namespace: undefined, name: 'cluster-scoped' });
    expect(objectKey({ metadata: { name: 'n' } })).toBe('n');
  });
});
