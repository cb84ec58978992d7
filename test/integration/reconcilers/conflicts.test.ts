/**
 * Every write the reconcilers make, answered once with a 409 (see
 * FaultProxy): a pool still scales, registers, runs, reports and cleans
 * up exactly as without conflicts, with no second Worker, key or Pod.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { ignoreNotFound } from '../../../src/runtime/errors.js';
import { PODS, SECRETS, type Pod, type Secret } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace, testKubeConfig } from '../../setup/cluster-access.js';
import { FaultProxy } from './fault-proxy.js';
import { eventually, InProcessController, poolCredentials, Seen } from './harness.js';

let c: InProcessController;
let proxy: FaultProxy;
let workersSeen: Seen<WorkerObject>;
let podsSeen: Seen<Pod>;
let secretsSeen: Seen<Secret>;

beforeAll(async () => {
  proxy = await FaultProxy.start(testKubeConfig(), { conflicts: true });
  c = new InProcessController({ namespace: await createTestNamespace('rec-conflict'), proxy });
  await c.start();
  workersSeen = await Seen.start(c.admin, WORKER_REF, c.ns);
  podsSeen = await Seen.start(c.admin, PODS, c.ns);
  secretsSeen = await Seen.start(c.admin, SECRETS, c.ns);
});
afterAll(async () => {
  await Promise.all([workersSeen?.stop(), podsSeen?.stop(), secretsSeen?.stop()]);
  await c?.stop();
  await proxy?.close();
});

describe('a 409 on every write', () => {
  it('changes nothing a user sees: workers, runs, reports and clean-up as usual, nothing made twice', async () => {
    await c.createPool('busy', 2, poolCredentials('01hconflictbusyaaaaaaaaaaa'));
    await eventually('two registered idle workers', async () => (await c.workers('busy')).filter((w) => w.status?.state === 'Idle').length === 2, 60_000);
    const [w] = await c.workers('busy');
    if (w === undefined) throw new Error('no worker');

    await c.backend.schedule(w.spec.workerId, 'run-conflict-1');
    await eventually('the worker busy', async () => (await c.workers('busy')).find((x) => x.metadata.name === w.metadata.name)?.status?.currentRunID === 'run-conflict-1', 60_000);
    await c.deletePod(runPodName('run-conflict-1'));
    await eventually('the run Pod released and gone', async () => (await ignoreNotFound(c.admin.get(PODS, c.ns, runPodName('run-conflict-1')))) === undefined, 60_000);
    expect(c.backend.statusesOf('run-conflict-1').at(-1)).toBe('failed');

    await c.scale('busy', 1);
    await eventually('one worker left', async () => (await c.workers('busy')).length === 1, 60_000);
    await c.admin.delete(WORKERPOOL_REF, c.ns, 'busy');
    await eventually('the pool gone', async () => (await c.pool('busy')) === undefined, 60_000);

    // Nothing made twice: two Workers, one key Secret each, one run Pod; the backend knows exactly
    // those two worker ids (a registration repeated after a refused write reuses the id and the key).
    expect(workersSeen.count).toBe(2);
    const keySecrets = secretsSeen.names.filter((n) => n.startsWith('busy-0'));
    expect(keySecrets.sort()).toEqual(workersSeen.names.sort());
    for (const name of keySecrets) expect(secretsSeen.uidsByName.get(name)?.size).toBe(1);
    expect(podsSeen.count).toBe(1);
    expect([...c.backend.workers.keys()].sort()).toEqual(workersSeen.names.map((n) => n.slice('busy-'.length)).sort());
    expect([...c.backend.workers.values()].every((x) => x.deregistered)).toBe(true);

    // And every kind of write was refused once on the way.
    const kinds = new Set(proxy.injected.map((k) => k.replace(/\/namespaces\/[^/]+/, '').replace(/\/(busy|run)[^/]*/g, '/<name>')));
    expect([...kinds].sort()).toEqual(
      expect.arrayContaining([
        'PATCH /apis/workers.spacelift.io/v1beta1/workerpools/<name>',
        'PATCH /apis/workers.spacelift.io/v1beta1/workerpools/<name>/status',
        'POST /apis/workers.spacelift.io/v1beta1/workers/<name>',
        'PATCH /apis/workers.spacelift.io/v1beta1/workers/<name>',
        'PATCH /apis/workers.spacelift.io/v1beta1/workers/<name>/status',
        'DELETE /apis/workers.spacelift.io/v1beta1/workers/<name>',
        'POST /api/v1/secrets/<name>',
        'PATCH /api/v1/secrets/<name>',
        'POST /api/v1/pods/<name>',
        'PATCH /api/v1/pods/<name>',
      ]),
    );
  });
});
