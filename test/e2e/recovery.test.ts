/**
 * State lives in the API: a controller killed at any instant and restarted
 * loses no run, registers nothing twice, makes no second Pod and leaves no
 * orphan; with leader election a standby takes over (issues 5 and 6).
 */
import { createHash } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LEASES, PODS, SECRETS, type Lease, type Pod } from '../../src/runtime/k8s-client.js';
import { readonlyTopic } from '../../src/protocol/index.js';
import { skipWithout, testNode } from '../setup/cluster-access.js';
import { startE2E, waitFor, WAITING_SCRIPT, type E2E } from './harness.js';
import { ObjectWatch } from './object-watch.js';

let e2e: E2E;
/** Named in src/controller/cli/main.ts, which cannot be imported (importing it starts a controller). */
const LEASE_NAME = 'kube-workerpool-controller-leader';

beforeAll(async () => {
  e2e = await startE2E('e2e-recovery');
  e2e.startController();
});
afterAll(async () => {
  await e2e?.close();
});

async function keyHashes(poolName: string): Promise<Map<string, string>> {
  const secrets = (await e2e.client.list(SECRETS, e2e.namespace, { labelSelector: 'workers.spacelift.io/worker-credentials' })).items;
  return new Map(
    secrets
      .filter((s) => s.metadata?.name?.startsWith(`${poolName}-`) && s.data?.['tls.crt'] !== undefined)
      .map((s) => [s.metadata?.name ?? '', createHash('sha256').update(s.data?.['tls.key'] ?? '').digest('hex')]),
  );
}

describe('a controller killed with SIGKILL', () => {
  test('mid-scale-up: the restarted one converges with no second registration, no new key, no orphaned Secret', { timeout: 240_000 }, async () => {
    const pool = await e2e.createWorkerPool('killed', 12);
    await waitFor('some workers registered', async () => (await keyHashes('killed')).size >= 3, 60_000);
    await e2e.controller.kill('SIGKILL');
    const before = await keyHashes('killed');

    e2e.startController();
    await waitFor('12 connected workers', async () => (await e2e.pool('killed')).status?.actualPoolSize === 12, 120_000);
    const workers = (await e2e.workers()).filter((w) => w.spec.poolName === 'killed');
    expect(workers).toHaveLength(12);
    const backend = await e2e.backendPool(pool.id);
    expect(backend.workers.map((w) => w.id).sort()).toEqual(workers.map((w) => w.spec.workerId).sort());
    const after = await keyHashes('killed');
    expect(after.size).toBe(12);
    for (const [name, hash] of before) expect(after.get(name), name).toBe(hash);
    // Every worker Secret belongs to a Worker: nothing orphaned by the kill.
    const secretNames = (await e2e.client.list(SECRETS, e2e.namespace, { labelSelector: 'workers.spacelift.io/worker-credentials' })).items
      .map((s) => s.metadata?.name ?? '')
      .filter((n) => n.startsWith('killed-'));
    expect(secretNames.sort()).toEqual(workers.map((w) => w.metadata.name).sort());
  });

  test.skipIf(skipWithout('the node', testNode() !== null))('while a run is Running: the restarted one reports its end, and only one Pod ever existed', async () => {
    const pool = await e2e.createWorkerPool('busy', 1, { keepSuccessfulPods: true });
    await waitFor('an idle worker', async () => (await e2e.pool('busy')).status?.idleWorkers === 1, 60_000);
    // Every Pod of the pool from before the run is submitted to after it is reported: a Pod made and
    // deleted in between (by either controller) would show here, and not in a final list.
    const pods = await ObjectWatch.start(e2e.client, PODS, e2e.namespace, `workers.spacelift.io/workerpool=${pool.id}`);
    const runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
    const pod = await waitFor('the run pod', async () => (await e2e.pods(`workers.spacelift.io/run-id=${runId}`))[0]);
    await waitFor('the backend to see it running', async () => (await e2e.run(runId)).state === 'running', 60_000);

    await e2e.controller.kill('SIGKILL');
    const workerId = (await e2e.backendPool(pool.id)).workers[0]?.id ?? '';
    const seen = e2e.env.logLines.length;
    e2e.startController();
    // Re-adopted: the new process opened the worker's session and told the backend it is busy with the run.
    await waitFor('the worker back online and busy', () =>
      e2e.env.logLines.slice(seen).some((l) => l.includes('"worker online"') && l.includes(workerId) && l.includes('"state":"busy"')), 60_000);
    const worker = (await e2e.workers()).find((x) => x.spec.poolName === 'busy');
    expect(worker?.status).toMatchObject({ state: 'Busy', currentRunID: runId });
    await e2e.endRun(pod.metadata?.name ?? '', 0);
    await waitFor('the backend to see it finished', async () => (await e2e.run(runId)).state === 'finished', 60_000);
    await pods.stop();
    expect(pod.metadata?.uid).toBeDefined();
    expect(pods.uids()).toEqual([pod.metadata?.uid]);
    expect(pods.events.some((e) => e.type === 'deleted')).toBe(false);
  }, 180_000);
});

describe('redelivery', () => {
  test('the same schedule delivered several times gives one Pod', async () => {
    const pool = await e2e.createWorkerPool('dup', 1);
    await waitFor('an idle worker', async () => (await e2e.pool('dup')).status?.idleWorkers === 1, 60_000);
    const sentBefore = e2e.env.backend.counters().schedulesSent;
    // Frozen, the controller acknowledges nothing: the backend re-sends the schedule every second.
    e2e.controller.signal('SIGSTOP');
    let pods: ObjectWatch<Pod> | undefined;
    let runId = '';
    // What the controller itself received and handled (its debug lines), not what the backend sent.
    const schedules = (msg: string): number => e2e.controller.records().filter((r) => r.msg === msg && r.type === 'schedule' && r.runId === runId).length;
    try {
      runId = await e2e.submitScriptRun(pool.id, WAITING_SCRIPT);
      // Opened while the controller is frozen, so it sees every Pod of the run from the first.
      pods = await ObjectWatch.start(e2e.client, PODS, e2e.namespace, `workers.spacelift.io/run-id=${runId}`);
      await waitFor('the schedule to be sent three times', () => e2e.env.backend.counters().schedulesSent - sentBefore >= 3, 30_000);
    } finally {
      e2e.controller.signal('SIGCONT');
    }
    try {
      await waitFor('the controller to receive the schedule three times', () => schedules('message received') >= 3, 30_000);
      await waitFor('the run to be accepted', async () => (await e2e.run(runId)).state === 'preparing', 30_000);
      const pod = await waitFor('the run pod', async () => (await e2e.pods(`workers.spacelift.io/run-id=${runId}`))[0]);
      await waitFor('the run to be running', async () => (await e2e.run(runId)).state === 'running', 60_000);
      // The window ends once every schedule the controller received is handled and the run is over.
      await e2e.endRun(pod.metadata?.name ?? '', 0);
      await waitFor('the run to be finished', async () => (await e2e.run(runId)).state === 'finished', 60_000);
      await waitFor('every received schedule to be handled', () => schedules('message handled') === schedules('message received'), 30_000);
      expect(schedules('message received')).toBeGreaterThanOrEqual(3);
      expect(pods?.uids()).toEqual([pod.metadata?.uid]);
    } finally {
      await pods?.stop();
    }
  }, 180_000);
});

describe('isolation', () => {
  test("one worker's certificate cannot read another worker's topic", async () => {
    const pool = await e2e.createWorkerPool('iso', 2);
    await waitFor('2 workers', async () => (await e2e.pool('iso')).status?.actualPoolSize === 2, 60_000);
    const [a, b] = (await e2e.workers()).filter((w) => w.spec.poolName === 'iso');
    const secret = await e2e.client.get(SECRETS, e2e.namespace, a.metadata.name ?? '');
    const field = (k: string): string => Buffer.from(secret.data?.[k] ?? '', 'base64').toString('utf8');
    // Frozen, the controller cannot take worker a's session back while the probe holds it.
    e2e.controller.signal('SIGSTOP');
    try {
      const client = await mqtt.connectAsync(e2e.env.backend.brokerUrl, {
        // Worker a's own identity (this takes its session over from the controller, which reconnects later).
        clientId: a.spec.workerId,
        clean: true,
        cert: field('tls.crt'),
        key: field('tls.key'),
        ca: field('ca.crt'),
        reconnectPeriod: 0,
      });
      try {
        // Its own topic is allowed, which shows the probe is really connected as worker a...
        expect((await client.subscribeAsync(readonlyTopic(pool.id, a.spec.workerId), { qos: 1 })).map((g) => g.qos)).toEqual([1]);
        // ...and b's is refused (SUBACK 128, which mqtt.js turns into an error).
        await expect(client.subscribeAsync(readonlyTopic(pool.id, b.spec.workerId), { qos: 1 })).rejects.toThrow(/Subscribe error/);
      } finally {
        await client.endAsync(true);
      }
    } finally {
      e2e.controller.signal('SIGCONT');
    }
  });
});

describe('leader election', () => {
  test('two controllers: one leads; when it dies the other takes over', { timeout: 180_000 }, async () => {
    await e2e.controller.kill('SIGKILL');
    const args = ['--leader-elect', `--leader-election-namespace=${e2e.namespace}`];
    const first = e2e.startController(args);
    await first.waitForLog('the first to lead', (r) => r.msg === 'became leader');
    const firstIdentity = first.records().find((r) => r.msg === 'starting')?.identity;
    expect(firstIdentity).toMatch(/\S/);
    // Every version of the Lease while both run: the first renews it, and it never changes hands.
    const leases = await ObjectWatch.start<Lease>(e2e.client, LEASES, e2e.namespace);
    const second = e2e.startController(args);
    try {
      await second.waitForLog('the second to see the first lead', (r) => r.msg === 'leader observed' && r.leader === firstIdentity);
      // The first keeps renewing for longer than a lease lasts after the second saw it: had the second
      // taken the renewals for an expired lease, it would have taken the lease within this window.
      const ours = () => leases.events.filter((e) => e.object.metadata?.name === LEASE_NAME).map((e) => e.object.spec);
      const observedAt = Date.now();
      const durationMs = (ours().at(-1)?.leaseDurationSeconds ?? 15) * 1000;
      await waitFor('the first to renew for longer than the lease lasts', () => ours().some((l) => Date.parse(String(l?.renewTime)) > observedAt + durationMs + 2_000), 60_000);
      expect(second.records().some((r) => r.msg === 'became leader')).toBe(false);
      expect(new Set(ours().map((l) => l?.holderIdentity))).toEqual(new Set([firstIdentity]));
    } finally {
      await leases.stop();
    }

    await first.kill('SIGKILL');
    await second.waitForLog('the second to take over', (r) => r.msg === 'became leader', 60_000);
    // The new leader does the work: a new pool gets its worker.
    await e2e.createWorkerPool('after-failover', 1);
    await waitFor('the new leader to register a worker', async () => (await e2e.pool('after-failover')).status?.actualPoolSize === 1, 60_000);
  });
});
