/**
 * Worker certificates in-process (issue 17): the controller renews each one
 * before it expires, without interrupting an idle or a busy worker, and a
 * renewal that fails is an Event and a condition, not an outage. The backend
 * double issues real X.509 certificates with a lifetime of seconds.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_REF, type WorkerObject } from '../../../src/api/types.js';
import { runPodName } from '../../../src/controller/runs/run-pod.js';
import { Informer } from '../../../src/runtime/informer.js';
import { EVENTS, PODS, SECRETS } from '../../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../../src/runtime/list-watch.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;
/** Every status a Worker of this namespace ever had, from a watch. */
const states = new Map<string, string[]>();
let watch: Informer<WorkerObject>;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-certs') });
  // Renewed after two thirds: every 8 s.
  c.backend.certLifetimeMs = 12_000;
  await c.start();
  watch = new Informer<WorkerObject>(kubeListWatch(c.admin, WORKER_REF), { name: 'cert-test-workers', namespaces: [c.ns] });
  const record = (w: WorkerObject): void => {
    const name = w.metadata.name ?? '';
    states.set(name, [...(states.get(name) ?? []), `${w.status?.state ?? ''}/${String(w.status?.connected ?? '')}`]);
  };
  watch.addEventHandler({ onAdd: record, onUpdate: (_o, w) => record(w) });
  watch.start();
  await watch.waitForSync();
});
afterAll(async () => {
  await watch?.stop();
  await c?.stop();
});

async function secretSerial(name: string): Promise<string | undefined> {
  const s = await c.admin.get(SECRETS, c.ns, name);
  const crt = s.data?.['tls.crt'];
  return crt === undefined ? undefined : new X509Certificate(Buffer.from(crt, 'base64').toString()).serialNumber.toLowerCase();
}

async function secretKeyType(name: string): Promise<string | undefined> {
  const key = (await c.admin.get(SECRETS, c.ns, name)).data?.['tls.key'];
  return key === undefined ? undefined : createPrivateKey(Buffer.from(key, 'base64').toString()).asymmetricKeyType;
}

async function oneIdleWorker(pool: string, poolId: string, credentials = poolCredentials(poolId)): Promise<WorkerObject> {
  await c.createPool(pool, 1, credentials);
  await eventually(`an idle worker of ${pool}`, async () => (await c.workers(pool))[0]?.status?.state === 'Idle');
  return (await c.workers(pool))[0] as WorkerObject;
}

describe('worker certificates', () => {
  it('are renewed before they expire, while the worker stays idle and connected', async () => {
    const w = await oneIdleWorker('idle', '01hcertsidleaaaaaaaaaaaaaa');
    const name = w.metadata.name ?? '';
    const first = await secretSerial(name);
    await eventually('two renewals', async () => (c.backend.issued.get(w.spec.workerId)?.length ?? 0) >= 3, 40_000);
    await eventually('the Secret holds the newest certificate', async () => (await secretSerial(name)) === c.backend.issued.get(w.spec.workerId)?.at(-1)?.replace(/^0+/, ''));
    expect(await secretSerial(name)).not.toBe(first);
    // The session runs on the newest certificate; each replaced one was closed cleanly (no will).
    // (Renewals come every 8 s: look until one is not in the middle of its switch.)
    await eventually('the session runs on the certificate in the Secret', async () => {
      const session = c.backend.sessionOf(w.spec.workerId);
      return session?.connected === true && new X509Certificate(session.options.credentials.certificatePem).serialNumber.toLowerCase() === (await secretSerial(name));
    });
    // Never shown as anything but an idle, connected worker once it was one.
    const seen = states.get(name) ?? [];
    expect(seen.slice(seen.indexOf('Idle/true'))).toEqual(expect.arrayContaining(['Idle/true']));
    expect(seen.slice(seen.indexOf('Idle/true')).filter((s) => s !== 'Idle/true')).toEqual([]);
    const worker = (await c.workers('idle'))[0];
    expect(worker?.status?.conditions?.find((x) => x.type === 'CertificateValid')).toMatchObject({ status: 'True', reason: 'Current' });
    const events = await c.admin.list(EVENTS, c.ns, { fieldSelector: `involvedObject.name=${name},reason=WorkerCertificateRenewed` });
    expect(events.items.length).toBeGreaterThan(0);
  }, 90_000);

  it('of an RSA worker whose pool moved to protocol version 2 are renewed with an ECDSA P-256 key, under the same worker id', async () => {
    const v1 = poolCredentials('01hcertsupgradeaaaaaaaaaaa', 1);
    const w = await oneIdleWorker('upgraded', v1.poolId, v1);
    const name = w.metadata.name ?? '';
    expect(await secretKeyType(name)).toBe('rsa');
    // The pool's token moves to version 2 (same pool, same pool key).
    const v2 = poolCredentials(v1.poolId, 2);
    await c.admin.mergePatch(SECRETS, c.ns, 'upgraded-credentials', { stringData: { token: v2.token } });
    await eventually('the renewal to an ECDSA key', async () => (await secretKeyType(name)) === 'ec', 40_000);
    const after = (await c.workers('upgraded'))[0];
    expect(after?.metadata.uid).toBe(w.metadata.uid);
    expect(after?.spec.workerId).toBe(w.spec.workerId);
    await eventually('the session runs on an ECDSA certificate', async () => {
      const session = c.backend.sessionOf(w.spec.workerId);
      return session?.connected === true && new X509Certificate(session.options.credentials.certificatePem).publicKey.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    });
  }, 90_000);

  it('are renewed while the worker is busy, and the run goes on', async () => {
    const w = await oneIdleWorker('busy', '01hcertsbusyaaaaaaaaaaaaaa');
    const name = w.metadata.name ?? '';
    await c.backend.schedule(w.spec.workerId, 'run-cert-busy');
    await eventually('busy', async () => (await c.workers('busy'))[0]?.status?.state === 'Busy');
    const before = c.backend.issued.get(w.spec.workerId)?.length ?? 0;
    await eventually('renewed while busy', async () => (c.backend.issued.get(w.spec.workerId)?.length ?? 0) > before, 30_000);
    await eventually('the Secret holds the newest certificate', async () => (await secretSerial(name)) === c.backend.issued.get(w.spec.workerId)?.at(-1)?.replace(/^0+/, ''));
    expect((await c.workers('busy'))[0]?.status?.state).toBe('Busy');
    const pod = await c.admin.get(PODS, c.ns, runPodName('run-cert-busy'));
    expect(pod.metadata?.deletionTimestamp).toBeUndefined();
    expect(c.backend.statusesOf('run-cert-busy')).not.toContain('failed');
    const seen = states.get(name) ?? [];
    expect(seen.slice(seen.indexOf('Busy/true')).filter((s) => s !== 'Busy/true')).toEqual([]);
  }, 90_000);

  it('a failed renewal is a Warning event and the CertificateValid condition, and the worker keeps working', async () => {
    const w = await oneIdleWorker('failing', '01hcertsfailingaaaaaaaaaaa');
    const name = w.metadata.name ?? '';
    c.backend.registrationFails = 'certificate authority offline';
    try {
      await eventually('the RenewalFailed condition', async () => (await c.workers('failing'))[0]?.status?.conditions?.some((x) => x.type === 'CertificateValid' && x.reason === 'RenewalFailed') === true, 30_000);
      const worker = (await c.workers('failing'))[0];
      const condition = worker?.status?.conditions?.find((x) => x.type === 'CertificateValid');
      expect(condition?.status).toBe('True');
      expect(condition?.message).toMatch(/^certificate renewal failed: register worker: backend answered 500: certificate authority offline; the current certificate stays in use until /);
      expect(worker?.status?.state).toBe('Idle');
      expect(c.backend.sessionOf(w.spec.workerId)?.connected).toBe(true);
      const events = await c.admin.list(EVENTS, c.ns, { fieldSelector: `involvedObject.name=${name},reason=WorkerCertificateRenewalFailed` });
      expect(events.items[0]?.type).toBe('Warning');
      // It runs runs meanwhile.
      await c.backend.schedule(w.spec.workerId, 'run-cert-failing');
      await eventually('busy', async () => (await c.workers('failing'))[0]?.status?.state === 'Busy');
    } finally {
      c.backend.registrationFails = undefined;
    }
    await eventually('renewed once the backend issues again', async () => (await c.workers('failing'))[0]?.status?.conditions?.some((x) => x.type === 'CertificateValid' && x.reason === 'Current') === true, 90_000);
  }, 150_000);
});
