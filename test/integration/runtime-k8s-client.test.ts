/**
 * The typed helpers against a real API server: custom objects and their status
 * subresource, patches of both kinds, optimistic concurrency, and the error
 * classification of what the server really answers.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { classifyApiError, isAlreadyExists, isConflict, isInvalid, isNotFound } from '../../src/runtime/errors.js';
import {
  EVENTS,
  KubeClient,
  PODS,
  SECRETS,
  jsonPointerSegment,
  resource,
  type CustomObject,
  type KubeObject,
} from '../../src/runtime/k8s-client.js';
import { FIELD_MANAGER } from '../../src/api/constants.js';

/** A custom resource to exercise the client with (the runtime knows no kinds of its own). */
const WORKERS = resource<CustomObject>('workers.spacelift.io', 'v1beta1', 'workers', 'Worker');
import { createTestNamespace, testKubeConfig } from '../setup/cluster-access.js';
import { eventually } from './runtime-support.js';

interface Crd extends KubeObject {
  readonly status?: { readonly conditions?: readonly { readonly type: string; readonly status: string }[] };
}
const CRDS = resource<Crd>('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition');

let ns: string;
let client: KubeClient;

/** Creates our CRDs from the committed install unless they are there already, and waits until they serve. */
async function ensureCrds(): Promise<void> {
  // Plain YAML: client-node's loadAllYaml maps fields to its models and drops
  // those it has no name for (x-kubernetes-int-or-string), leaving an invalid CRD.
  const docs = parseAllDocuments(readFileSync(new URL('../../dist/manifests.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as KubeObject);
  for (const crd of docs.filter((d) => d?.kind === 'CustomResourceDefinition')) {
    await client.create(CRDS, undefined, crd).catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
    });
    await eventually(`CRD ${crd.metadata?.name} established`, async () => {
      const live = await client.get(CRDS, undefined, crd.metadata?.name ?? '');
      return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
  }
}

beforeAll(async () => {
  client = KubeClient.fromKubeConfig(testKubeConfig(), { fieldManager: FIELD_MANAGER });
  ns = await createTestNamespace('rt-client');
  await ensureCrds();
});

afterAll(() => client.rest.close());

function worker(name: string): CustomObject {
  return { metadata: { name, labels: { 'workers.spacelift.io/workerpool': 'pool-1' } }, spec: { poolName: 'pool', workerId: name } };
}

describe('KubeClient on a real API server', () => {
  it('creates a Worker and patches its status subresource with a merge patch', async () => {
    const created = await client.create(WORKERS, ns, worker('w-status'));
    expect(created.metadata?.uid).toBeTruthy();
    const patched = await client.mergePatch(WORKERS, ns, 'w-status', { status: { registered: true, state: 'Idle' } }, { subresource: 'status' });
    expect(patched.status).toMatchObject({ registered: true, state: 'Idle' });
    // A status patch through the main resource is ignored by the server, which is why the subresource matters.
    await client.mergePatch(WORKERS, ns, 'w-status', { status: { state: 'Busy' } });
    expect((await client.get(WORKERS, ns, 'w-status')).status?.state).toBe('Idle');
    const managers = (await client.get(WORKERS, ns, 'w-status')).metadata?.managedFields?.map((f) => f.manager);
    expect(managers).toContain('kube-workerpool-controller');
  });

  it('edits finalizers with a guarded JSON patch and rejects a stale one', async () => {
    const w = await client.create(WORKERS, ns, worker('w-finalizer'));
    const rv = w.metadata?.resourceVersion ?? '';
    const added = await client.jsonPatch(WORKERS, ns, 'w-finalizer', [
      { op: 'test', path: '/metadata/resourceVersion', value: rv },
      { op: 'add', path: '/metadata/finalizers', value: ['workers.spacelift.io/deregister'] },
      { op: 'replace', path: `/metadata/labels/${jsonPointerSegment('workers.spacelift.io/workerpool')}`, value: 'pool-2' },
    ]);
    expect(added.metadata?.finalizers).toEqual(['workers.spacelift.io/deregister']);
    expect(added.metadata?.labels?.['workers.spacelift.io/workerpool']).toBe('pool-2');

    const stale = await client
      .jsonPatch(WORKERS, ns, 'w-finalizer', [{ op: 'test', path: '/metadata/resourceVersion', value: rv }])
      .catch((e: unknown) => e);
    expect(classifyApiError(stale)).toBe('invalid');

    await client.delete(WORKERS, ns, 'w-finalizer');
    const terminating = await client.get(WORKERS, ns, 'w-finalizer');
    expect(terminating.metadata?.deletionTimestamp).toMatch(/^\d{4}-/);
    await client.jsonPatch(WORKERS, ns, 'w-finalizer', [{ op: 'remove', path: '/metadata/finalizers/0' }]);
    await eventually('the Worker to disappear', async () => {
      const gone = await client.get(WORKERS, ns, 'w-finalizer').catch((e: unknown) => e);
      return isNotFound(gone);
    });
  });

  it('classifies what the server answers: AlreadyExists, Conflict, NotFound, Invalid', async () => {
    const w = await client.create(WORKERS, ns, worker('w-errors'));
    expect(isAlreadyExists(await client.create(WORKERS, ns, worker('w-errors')).catch((e: unknown) => e))).toBe(true);

    await client.mergePatch(WORKERS, ns, 'w-errors', { metadata: { annotations: { touched: 'yes' } } });
    const stale = await client.replace(WORKERS, ns, 'w-errors', w).catch((e: unknown) => e);
    expect(isConflict(stale)).toBe(true);

    expect(isNotFound(await client.get(WORKERS, ns, 'missing').catch((e: unknown) => e))).toBe(true);
    const invalid = await client
      .create(WORKERS, ns, { metadata: { name: 'w-invalid' }, spec: { poolName: 'p' } })
      .catch((e: unknown) => e);
    expect(isInvalid(invalid)).toBe(true);

    const wrongUid = await client.delete(WORKERS, ns, 'w-errors', { preconditions: { uid: 'not-the-uid' } }).catch((e: unknown) => e);
    expect(isConflict(wrongUid)).toBe(true);
  });

  it('creates and lists pods by label; secrets and events round-trip', async () => {
    const created = await client.create(PODS, ns, {
      metadata: { name: 'run-1', labels: { 'workers.spacelift.io/run-id': 'run-1' } },
      // Gated: a client test has no use for the node running it.
      spec: { containers: [{ name: 'worker', image: 'example.invalid/runner:1' }], schedulingGates: [{ name: 'workers.spacelift.io/test' }] },
    });
    expect(created.status?.phase).toBe('Pending');
    const listed = await client.listAll(PODS, ns, { labelSelector: 'workers.spacelift.io/run-id=run-1' });
    expect(listed.items.map((p) => p.metadata?.name)).toEqual(['run-1']);
    expect(Number(listed.resourceVersion)).toBeGreaterThan(0);

    await client.create(SECRETS, ns, { metadata: { name: 'creds' }, type: 'Opaque', data: { token: Buffer.from('t').toString('base64') } });
    expect((await client.get(SECRETS, ns, 'creds')).data?.token).toBe('dA==');

    const event = await client.create(EVENTS, ns, {
      metadata: { name: 'run-1.test' },
      involvedObject: { kind: 'Pod', name: 'run-1', namespace: ns, apiVersion: 'v1' },
      reason: 'Testing',
      message: 'events are accepted',
      type: 'Normal',
      source: { component: 'kube-workerpool-controller' },
    });
    expect(event.reason).toBe('Testing');
  });
});
