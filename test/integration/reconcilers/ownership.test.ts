/**
 * The controller acts only on what is its own (issue 17): a schedule or stop
 * for a run whose Pod name is taken by a Pod that is not the Worker's touches
 * nothing, a Worker never adopts a Secret it does not own, and a run's
 * environment cannot override what the pool's envFrom sets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP_VERSION, LABEL_MANAGED_BY, LABEL_RUN_ID, LABEL_WORKER, MANAGED_BY_VALUE } from '../../../src/api/constants.js';
import type { WorkerObject } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { EVENTS, PODS, SECRETS, type Pod } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-owner') });
  await c.start();
});
afterAll(async () => {
  await c?.stop();
});

async function oneIdleWorker(pool: string, poolId: string, spec: Record<string, unknown> = {}): Promise<WorkerObject> {
  await c.createPool(pool, 1, poolCredentials(poolId), spec);
  await eventually(`an idle worker of ${pool}`, async () => (await c.workers(pool))[0]?.status?.state === 'Idle');
  return (await c.workers(pool))[0] as WorkerObject;
}

function foreignPod(name: string, labels: Record<string, string>, owner?: { name: string; uid: string }): Pod {
  return {
    metadata: {
      name,
      labels,
      ...(owner === undefined ? {} : { ownerReferences: [{ apiVersion: API_GROUP_VERSION, kind: 'Worker', name: owner.name, uid: owner.uid, controller: true }] }),
    },
    spec: { containers: [{ name: 'c', image: 'registry.example.com/app:1' }], nodeSelector: { 'kwc.test/never-scheduled': 'true' } },
  };
}

describe('ownership', () => {
  it("a schedule whose Pod name is taken by someone else's Pod fails the run and leaves the Pod alone", async () => {
    const w = await oneIdleWorker('taken', '01howntakenaaaaaaaaaaaaaaa');
    const name = runPodName('run-taken-1');
    const created = await c.admin.create(PODS, c.ns, foreignPod(name, { app: 'not-a-run' }));
    await c.backend.schedule(w.spec.workerId, 'run-taken-1');
    expect(c.backend.statusesOf('run-taken-1')).toEqual(['failed']);
    expect(c.backend.statuses.find((s) => s.runId === 'run-taken-1' && s.status === 'failed')?.reason).toMatch(/^Pod .* exists but is not Worker .*'s/);
    const after = await c.admin.get(PODS, c.ns, name);
    expect(after.metadata?.uid).toBe(created.metadata?.uid);
    expect(after.metadata?.finalizers).toBeUndefined();
    expect((await c.workers('taken'))[0]?.status?.state).toBe('Idle');
  });

  it('a stop for a run whose Pod carries our labels but another owner does nothing to it', async () => {
    const w = await oneIdleWorker('mimic', '01hownmimicaaaaaaaaaaaaaaa');
    // Another pool's Worker, which exists (an owner that does not exist would be garbage-collected away).
    const other = await oneIdleWorker('other', '01hownotheraaaaaaaaaaaaaaa');
    const name = runPodName('run-mimic-1');
    // Labels that put it into the controller's cache, with this worker's id, but owned by the other Worker.
    await c.admin.create(
      PODS,
      c.ns,
      foreignPod(name, { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_WORKER]: w.spec.workerId, [LABEL_RUN_ID]: 'run-mimic-1' }, { name: other.metadata.name ?? '', uid: other.metadata.uid ?? '' }),
    );
    await eventually('the Pod in the cache', async () => c.running.ctx.caches.pods.get(c.ns, name) !== undefined);
    await c.backend.stop(w.spec.workerId, 'run-mimic-1');
    const pod = await c.admin.get(PODS, c.ns, name);
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    expect(pod.metadata?.annotations?.['workers.spacelift.io/stop-requested']).toBeUndefined();
    await c.backend.schedule(w.spec.workerId, 'run-mimic-1');
    expect(c.backend.statusesOf('run-mimic-1')).toEqual(['failed']);
  });

  it('a Worker does not adopt a Secret with its name that it does not own, and says so', async () => {
    const w = await oneIdleWorker('secret', '01hownsecretaaaaaaaaaaaaaa');
    const name = w.metadata.name ?? '';
    await c.admin.delete(SECRETS, c.ns, name);
    const foreign = await c.admin.create(SECRETS, c.ns, { metadata: { name }, stringData: { note: 'someone else\'s' } });
    await eventually('SecretConflict', async () => (await c.workers('secret'))[0]?.status?.conditions?.some((x) => x.type === 'Registered' && x.reason === 'SecretConflict') === true);
    const condition = (await c.workers('secret'))[0]?.status?.conditions?.find((x) => x.type === 'Registered');
    expect(condition?.status).toBe('False');
    expect(condition?.message).toMatch(/^Secret .* exists but is not Worker/);
    const events = await c.admin.list(EVENTS, c.ns, { fieldSelector: `involvedObject.name=${name},reason=WorkerSecretConflict` });
    expect(events.items.length).toBeGreaterThan(0);
    const after = await c.admin.get(SECRETS, c.ns, name);
    expect(after.metadata?.uid).toBe(foreign.metadata?.uid);
    expect(after.metadata?.ownerReferences).toBeUndefined();
    expect(Object.keys(after.data ?? {})).toEqual(['note']);
  });

  it("a run's environment cannot override what the pool's envFrom sets", async () => {
    await c.admin.create(SECRETS, c.ns, { metadata: { name: 'pool-env' }, stringData: { DB_PASSWORD: 'from-the-pool' } });
    const w = await oneIdleWorker('envfrom', '01hownenvfromaaaaaaaaaaaaa', {
      pod: { nodeSelector: { 'kwc.test/never-scheduled': 'true' }, workerContainer: { envFrom: [{ secretRef: { name: 'pool-env' }, prefix: 'APP_' }] } },
    });
    await c.backend.schedule(w.spec.workerId, 'run-envfrom-1', { env: { APP_DB_PASSWORD: 'from-the-backend', PATH: '/tmp/evil', TF_LOG: 'info' } });
    const pod = await c.admin.get(PODS, c.ns, runPodName('run-envfrom-1'));
    const env = Object.fromEntries((pod.spec?.containers.find((x) => x.name === 'worker')?.env ?? []).map((e) => [e.name, e.value]));
    expect(env['APP_DB_PASSWORD']).toBeUndefined();
    expect(env['PATH']).toBeUndefined();
    expect(env['TF_LOG']).toBe('info');
  });
});
