/**
 * WorkerPools become registered, connected Workers, and follow poolSize both
 * ways (issue 5), against a real kube-apiserver and the reference backend.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
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
