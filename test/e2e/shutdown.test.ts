/**
 * SIGTERM during a run (issue 7): the controller stops cleanly and leaves the
 * run alone; the next controller reports its end.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Pool } from '../integration/backend-harness.js';
import { skipWithout, testNode } from '../setup/cluster-access.js';
import { startE2E, waitFor, WAITING_SCRIPT, type E2E } from './harness.js';

let e2e: E2E;
let pool: Pool;
const LEASE_NAME = 'kube-workerpool-controller-leader';

beforeAll(async () => {
  e2e = await startE2E('e2e-shutdown');
});
afterAll(async () => {
  await e2e?.close();
});

function leaseHolder(): Promise<string | undefined> {
  return e2e.client.rest
    .request<{ spec?: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${e2e.namespace}/leases/${LEASE_NAME}`)
    .then((l) => l.spec?.holderIdentity);
}

test.skipIf(skipWithout('the node', testNode() !== null))('SIGTERM during a run: exit 0, the Pod and the run live on, the Lease is released, and a new controller reports the end', async () => {
  const args = ['--leader-elect', `--leader-election-namespace=${e2e.namespace}`];
  const first = e2e.startController(args);
  pool = await e2e.createWorkerPool('term', 1);
  await waitFor('the pool to be ready', async () => (await e2e.pool('term')).status?.idleWorkers === 1, 90_000);
  const runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
  const pod = await waitFor('the run pod', async () => (await e2e.pods(`workers.spacelift.io/run-id=${runId}`))[0]);
  const podName = pod.metadata?.name ?? '';
  const running = await waitFor('the run to be running', async () => {
    const r = await e2e.run(runId);
    return r.state === 'running' ? r : undefined;
  });
  // The first controller holds the Lease under the identity it started with.
  const identity = first.records().find((r) => r.msg === 'starting')?.identity;
  expect(identity).toMatch(/\S/);
  expect(await leaseHolder()).toBe(identity);

  const backendLinesAtSigterm = e2e.env.logLines.length;
  await first.kill('SIGTERM');
  expect(await first.exited).toBe(0);
  expect(first.records().some((r) => r.msg === 'shutting down; run pods keep running')).toBe(true);
  expect(first.records().some((r) => r.msg === 'released the lease')).toBe(true);
  expect(await leaseHolder()).toBe('');

  // The backend redelivers every second in these tests; give it several chances to misbehave.
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 1_000));
    const run = await e2e.run(runId);
    expect(run.state).toBe('running');
    expect(run.workerId).toBe(running.workerId);
    const still = (await e2e.pods(`workers.spacelift.io/run-id=${runId}`))[0];
    expect(still?.metadata?.name).toBe(podName);
    expect(still?.metadata?.deletionTimestamp).toBeUndefined();
    expect(still?.status?.phase).toBe('Running');
    // A clean DISCONNECT: no will, so the backend did not hear "offline" (its own silence timeout is 20 s here).
    expect(e2e.env.logLines.slice(backendLinesAtSigterm).filter((l) => l.includes('worker offline'))).toEqual([]);
  }

  const second = e2e.startController(args);
  await second.waitForLog('the new controller to lead', (r) => r.msg === 'became leader');
  await waitFor('the worker to be Busy with the run again', async () => {
    const w = (await e2e.workers())[0];
    return w?.status?.state === 'Busy' && w.status.currentRunID === runId && w.status.connected === true;
  });
  await e2e.endRun(podName, 0);
  await waitFor('the run to be finished', async () => (await e2e.run(runId)).state === 'finished');
  // Reported first, then released: the Pod's finalizer goes (and the history rules delete a successful Pod).
  await waitFor('the run pod to be released', async () => (await e2e.pods(`workers.spacelift.io/run-id=${runId}`)).every((p) => p.metadata?.finalizers === undefined));
}, 300_000);
