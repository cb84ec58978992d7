/**
 * The informer against a real kube-apiserver: list+watch, deletes, restarts after
 * the connection is cut, and relisting on a genuine 410 from the server.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { Informer, objectKey, type ListWatchSource } from '../../src/runtime/informer.js';
import { EVENTS, KubeClient, resource, type CoreEvent, type KubeObject } from '../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../src/runtime/list-watch.js';
import { createTestNamespace, skipWithout, testKubeConfig } from '../setup/cluster-access.js';
import { CuttableProxy, apiServerAddress, eventually } from './runtime-support.js';

interface ConfigMap extends KubeObject {
  readonly data?: Record<string, string>;
}
const CONFIGMAPS = resource<ConfigMap>('', 'v1', 'configmaps', 'ConfigMap');

let ns: string;
let other: string;
let admin: KubeClient;
let proxy: CuttableProxy;
let viaProxy: KubeClient;
const informers: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  const kc = testKubeConfig();
  ns = await createTestNamespace('rt-informer');
  other = await createTestNamespace('rt-informer-other');
  admin = KubeClient.fromKubeConfig(kc);
  proxy = await CuttableProxy.start(apiServerAddress(kc));
  viaProxy = KubeClient.fromKubeConfig(proxy.kubeConfig(kc));
});

afterEach(async () => {
  await Promise.all(informers.splice(0).map((i) => i.stop()));
  proxy.restore();
});

afterAll(async () => {
  viaProxy.rest.close();
  admin.rest.close();
  await proxy.close();
});

function put(namespace: string, name: string, labels: Record<string, string>, data: Record<string, string> = {}): Promise<ConfigMap> {
  return admin.create(CONFIGMAPS, namespace, { metadata: { name, labels }, data });
}

function track<T extends KubeObject>(source: ListWatchSource<T>, namespaces: string[]): { informer: Informer<T>; events: string[] } {
  const informer = new Informer<T>(source, {
    name: 'configmaps',
    namespaces,
    backoff: { baseMs: 100, maxMs: 2000, jitter: 0.2 },
  });
  const events: string[] = [];
  informer.addEventHandler({
    onAdd: (o) => events.push(`add ${o.metadata?.name}`),
    onUpdate: (_, o) => events.push(`update ${o.metadata?.name}`),
    onDelete: (o) => events.push(`delete ${o.metadata?.name}`),
  });
  informers.push(informer);
  return { informer, events };
}

/** Counts lists, watches and the 410s the server answered. */
function instrumented<T extends KubeObject>(inner: ListWatchSource<T>): ListWatchSource<T> & {
  lists: number;
  watches: string[];
  expired: number;
} {
  const s = {
    lists: 0,
    watches: [] as string[],
    expired: 0,
    list: async (namespace: string | undefined) => {
      s.lists++;
      return inner.list(namespace);
    },
    watch: (
      namespace: string | undefined,
      rv: string,
      timeout: number,
      onEvent: (type: string, object: unknown) => void,
      onDone: (err: unknown) => void,
    ) => {
      s.watches.push(rv);
      const seeErrors = (type: string, object: unknown): void => {
        if (type === 'ERROR' && (object as { code?: number }).code === 410) s.expired++;
        onEvent(type, object);
      };
      const seeDone = (err: unknown): void => {
        if ((err as { statusCode?: number } | undefined)?.statusCode === 410) s.expired++;
        onDone(err);
      };
      return inner.watch(namespace, rv, timeout, seeErrors, seeDone);
    },
  };
  return s;
}

describe('Informer on a real API server', () => {
  it('lists, watches, applies updates and deletes, and keeps to its namespaces and selector', async () => {
    await put(ns, 'a', { app: 'rt', pool: 'p1' });
    await put(ns, 'unlabelled', {});
    await put(other, 'elsewhere', { app: 'rt', pool: 'p1' });
    const { informer, events } = track(kubeListWatch(admin, CONFIGMAPS, { labelSelector: 'app=rt' }), [ns]);
    informer.indexByLabel('pool');
    informer.start();
    await informer.waitForSync();
    expect(informer.list().map(objectKey)).toEqual([`${ns}/a`]);

    await put(ns, 'b', { app: 'rt', pool: 'p1' });
    await admin.mergePatch(CONFIGMAPS, ns, 'a', { data: { k: 'v' } });
    await admin.delete(CONFIGMAPS, ns, 'b');
    await eventually('the update and the delete', () => events.includes('delete b') && informer.get(ns, 'a')?.data?.k === 'v');
    expect(events).toEqual(['add a', 'add b', 'update a', 'delete b']);
    expect(informer.byLabel('pool', 'p1').map(objectKey)).toEqual([`${ns}/a`]);
  });

  it('resumes after its connection is cut, without relisting, and catches up on what it missed', async () => {
    const source = instrumented(kubeListWatch(viaProxy, CONFIGMAPS, { labelSelector: 'app=cut' }));
    const { informer, events } = track(source, [ns]);
    informer.start();
    await informer.waitForSync();
    await put(ns, 'before-cut', { app: 'cut' });
    await eventually('the first object', () => informer.get(ns, 'before-cut') !== undefined);

    proxy.takeDown();
    await put(ns, 'while-down', { app: 'cut' });
    await admin.delete(CONFIGMAPS, ns, 'before-cut');
    await eventually('a failed reconnect attempt', () => source.watches.length >= 2);
    proxy.restore();

    await eventually('the missed changes', () => informer.get(ns, 'while-down') !== undefined && informer.get(ns, 'before-cut') === undefined);
    expect(source.lists).toBe(1);
    expect(events).toEqual(['add before-cut', 'add while-down', 'delete before-cut']);
    await put(ns, 'after', { app: 'cut' });
    await eventually('a new object after the reconnect', () => informer.get(ns, 'after') !== undefined);
  });

  it('watches all namespaces when given none', async () => {
    const { informer } = track(kubeListWatch(admin, CONFIGMAPS, { labelSelector: 'app=everywhere' }), []);
    informer.start();
    await informer.waitForSync();
    await put(ns, 'x', { app: 'everywhere' });
    await put(other, 'y', { app: 'everywhere' });
    await eventually('objects from both namespaces', () => informer.size === 2);
  });
});

/**
 * A real 410 needs history the server no longer has. The watch cache answers
 * old resourceVersions from memory, so this uses Events, which kube-apiserver
 * does not cache (their watches go to etcd), on a control plane of its own
 * whose etcd it compacts - something a shared test cluster must not suffer.
 */
describe.skipIf(skipWithout('the local test cluster (KWC_TEST_KUBECONFIG names another)', !inject('externalCluster')))('Informer and an expired resourceVersion', () => {
  let plane: ControlPlane;
  let client: KubeClient;
  let planeProxy: CuttableProxy;
  let planeViaProxy: KubeClient;

  beforeAll(async () => {
    plane = await startControlPlane({
      dir: mkdtempSync(join(tmpdir(), 'kwc-rt-410-')),
      watchParentPid: process.pid,
      removeDirOnStop: true,
    });
    const kc = loadKubeConfig(plane.kubeconfigPath);
    client = KubeClient.fromKubeConfig(kc);
    planeProxy = await CuttableProxy.start(apiServerAddress(kc));
    planeViaProxy = KubeClient.fromKubeConfig(planeProxy.kubeConfig(kc));
  });

  afterAll(async () => {
    planeViaProxy?.rest.close();
    client?.rest.close();
    await planeProxy?.close();
    await plane?.stop();
  });

  async function compactEtcd(revision: string): Promise<void> {
    const res = await fetch(`${plane.state.etcdClientUrl}/v3/kv/compaction`, {
      method: 'POST',
      body: JSON.stringify({ revision, physical: true }),
    });
    expect(res.status).toBe(200);
  }

  function event(name: string): CoreEvent {
    return {
      metadata: { name, labels: { app: 'gone' } },
      involvedObject: { kind: 'Pod', name: 'x', namespace: 'default' },
      reason: 'Test',
      message: name,
    };
  }

  it('relists on 410 Gone and reports objects deleted meanwhile', async () => {
    await client.create(EVENTS, 'default', event('stays'));
    await client.create(EVENTS, 'default', event('goes'));
    const source = instrumented(kubeListWatch(planeViaProxy, EVENTS, { labelSelector: 'app=gone' }));
    const { informer, events } = track(source, ['default']);
    informer.start();
    await informer.waitForSync();
    expect(informer.size).toBe(2);

    planeProxy.takeDown();
    await client.delete(EVENTS, 'default', 'goes');
    const created = await client.create(EVENTS, 'default', event('new'));
    await compactEtcd(created.metadata?.resourceVersion ?? '');
    planeProxy.restore();

    await eventually('the relist', () => source.lists === 2 && informer.get('default', 'new') !== undefined);
    expect(source.expired).toBe(1);
    expect(informer.list().map((o) => o.metadata?.name).sort()).toEqual(['new', 'stays']);
    expect(events.slice(0, 2).sort()).toEqual(['add goes', 'add stays']); // list order is the server's
    expect(events.slice(2)).toEqual(['delete goes', 'add new']);
  });
});
