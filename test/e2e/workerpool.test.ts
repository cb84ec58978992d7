/**
 * WorkerPools become registered, connected Workers, and follow poolSize both
 * ways (issue 5), against a real kube-apiserver and the reference backend.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ignoreNotFound } from '../../src/runtime/errors.js';
import { kubectlOk } from '../setup/cluster-access.js';
import { startE2E, waitFor, type E2E } from './harness.js';

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E('e2e-pool');
  e2e.startController();
});
afterAll(async () => {
  await e2e?.close();
});

async function connectedWorkers(poolId: string): Promise<number> {
  const pool = await e2e.backendPool(poolId);
  return pool.workers.filter((w) => w.state !== 'offline').length;
}

describe('a documented WorkerPool', () => {
  test('poolSize 2 gives 2 registered, connected Workers, shown by kubectl and the backend', async () => {
    const pool = await e2e.createWorkerPool('docs-pool', 2);
    await waitFor('2 connected workers in the pool status', async () => (await e2e.pool('docs-pool')).status?.actualPoolSize === 2);

    const table = await kubectlOk(['get', 'workerpools', '-n', e2e.namespace]);
    expect(table).toMatch(/NAME\s+DESIRED POOL SIZE\s+ACTUAL POOL SIZE/);
    expect(table).toMatch(/docs-pool\s+2\s+2\s/);

    const workers = await kubectlOk(['get', 'workers', '-n', e2e.namespace, '-l', `workers.spacelift.io/workerpool=${pool.id}`, '-o', 'json']);
    const items = (JSON.parse(workers) as { items: { metadata: { name: string }; spec: { workerId: string }; status: { registered: boolean; state: string } }[] }).items;
    expect(items).toHaveLength(2);
    for (const w of items) {
      expect(w.metadata.name).toBe(`docs-pool-${w.spec.workerId}`);
      expect(w.status).toMatchObject({ registered: true, state: 'Idle' });
    }

    const backend = await e2e.backendPool(pool.id);
    expect(backend.workers.map((w) => w.id).sort()).toEqual(items.map((w) => w.spec.workerId).sort());
    await waitFor('both workers online in the backend', async () => (await connectedWorkers(pool.id)) === 2);
    expect(await e2e.workerSecrets()).toBe(2);
  });
});

describe('scaling', () => {
  test('kubectl scale 2 -> 5 -> 1 converges, and the backend worker list follows', async () => {
    const pool = await e2e.createWorkerPool('scaled', 2);
    const converged = async (n: number): Promise<boolean> => {
      const status = (await e2e.pool('scaled')).status;
      const workers = (await e2e.workers()).filter((w) => w.spec.poolName === 'scaled');
      const backend = await e2e.backendPool(pool.id);
      return status?.actualPoolSize === n && status.desiredPoolSize === n && workers.length === n && backend.workers.length === n;
    };
    await waitFor('2 workers', () => converged(2));

    await kubectlOk(['scale', 'workerpools', 'scaled', '-n', e2e.namespace, '--replicas=5']);
    expect((await e2e.pool('scaled')).spec?.poolSize).toBe(5);
    await waitFor('5 workers', () => converged(5), 120_000);

    await kubectlOk(['scale', 'workerpools', 'scaled', '-n', e2e.namespace, '--replicas=1']);
    await waitFor('1 worker', () => converged(1), 120_000);
    const remaining = (await e2e.workers()).filter((w) => w.spec.poolName === 'scaled');
    expect((await e2e.backendPool(pool.id)).workers.map((w) => w.id)).toEqual([remaining[0].spec.workerId]);
  });

  test('editing poolSize works like kubectl scale', async () => {
    await e2e.createWorkerPool('edited', 1);
    await waitFor('1 worker', async () => (await e2e.pool('edited')).status?.actualPoolSize === 1);
    await kubectlOk(['patch', 'workerpool', 'edited', '-n', e2e.namespace, '--type=merge', '-p', '{"spec":{"poolSize":3}}']);
    await waitFor('3 workers', async () => (await e2e.pool('edited')).status?.actualPoolSize === 3, 120_000);
  });
});

describe('deleting a pool', () => {
  test('removes its Workers and their Secrets and deregisters them', async () => {
    const pool = await e2e.createWorkerPool('doomed', 2);
    await waitFor('2 workers', async () => (await e2e.pool('doomed')).status?.actualPoolSize === 2);
    // The selector the emptiness check below uses finds the two worker Secrets while the pool lives.
    const secretsOf = async (): Promise<string[]> =>
      (await kubectlOk(['get', 'secrets', '-n', e2e.namespace, '-l', `workers.spacelift.io/workerpool=${pool.id}`, '-o', 'name'])).split('\n').filter((l) => l !== '');
    const workerNames = (await e2e.workers()).filter((w) => w.spec.poolName === 'doomed').map((w) => `secret/${w.metadata.name}`);
    expect(workerNames).toHaveLength(2);
    await waitFor('both worker Secrets', async () => (await secretsOf()).length === 2);
    expect((await secretsOf()).sort()).toEqual(workerNames.sort());
    expect((await e2e.backendPool(pool.id)).workers).toHaveLength(2);

    await kubectlOk(['delete', 'workerpool', 'doomed', '-n', e2e.namespace, '--wait=false']);
    // Gone means NotFound; any other error (the API server down, a wrong name) fails the test.
    await waitFor('the pool to be gone', async () => (await ignoreNotFound(e2e.pool('doomed'))) === undefined, 60_000);
    expect((await e2e.workers()).filter((w) => w.spec.poolName === 'doomed')).toEqual([]);
    expect(await secretsOf()).toEqual([]);
    expect((await e2e.backendPool(pool.id)).workers).toEqual([]);
  });
});

describe('the run Pod template', () => {
  test('is checked with a dry run when the pool changes; a bad one is reported on the pool', async () => {
    await e2e.createWorkerPool('template', 1, { pod: { volumes: [{ name: 'Not_A_Valid_Name', emptyDir: {} }] } });
    const bad = await waitFor('PodTemplateValid=False', async () =>
      (await e2e.pool('template')).status?.conditions?.find((c) => c.type === 'PodTemplateValid' && c.status === 'False'));
    expect(bad.message).toContain('spec.volumes');
    const events = await e2e.eventsFor('WorkerPool', 'template');
    expect(events.find((e) => e.reason === 'PodTemplateInvalid')?.message).toContain('spec.volumes');

    await kubectlOk(['patch', 'workerpool', 'template', '-n', e2e.namespace, '--type=merge', '-p', '{"spec":{"pod":{"volumes":[{"name":"cache","emptyDir":{}}]}}}']);
    await waitFor('PodTemplateValid=True', async () =>
      (await e2e.pool('template')).status?.conditions?.some((c) => c.type === 'PodTemplateValid' && c.status === 'True'));
  });
});
