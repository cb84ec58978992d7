/**
 * Moving a running pool from protocol version 1 to 2 (issue 19): the
 * controller, a real kube-apiserver, the reference backend and a real
 * mosquitto over TLS. The backend starts speaking version 1 only, so the
 * pool's workers get RSA keys; then the backend restarts at version 2
 * (mosquitto keeps running) and the pool's Secret gets the token the backend
 * now issues. The RSA workers stay exactly as they were: same ids, same keys
 * and certificates, no second registration, no new broker connection; the
 * workers the pool grows by get ECDSA P-256 keys.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WORKER_SECRET_CERT, WORKER_SECRET_KEY } from '../../src/api/constants.js';
import { SECRETS } from '../../src/runtime/k8s-client.js';
import { kubectlOk } from '../setup/cluster-access.js';
import { startE2E, waitFor, type E2E } from './harness.js';

let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E('e2e-upgrade', [], { broker: 'mosquitto', options: { protocolVersion: 1 } });
  e2e.startController();
});
afterAll(async () => {
  await e2e?.close();
});

interface WorkerKeys {
  readonly key: string;
  readonly cert: string;
}

/** Each Worker's Secret, by worker id: the private key and certificate PEMs. */
async function workerKeys(): Promise<Map<string, WorkerKeys>> {
  const workers = await e2e.workers();
  const secrets = (await e2e.client.list(SECRETS, e2e.namespace, { labelSelector: 'workers.spacelift.io/worker-credentials' })).items;
  const out = new Map<string, WorkerKeys>();
  for (const w of workers) {
    const data = secrets.find((s) => s.metadata?.name === w.metadata.name)?.data ?? {};
    const text = (k: string): string => Buffer.from(data[k] ?? '', 'base64').toString('utf8');
    out.set(w.spec.workerId, { key: text(WORKER_SECRET_KEY), cert: text(WORKER_SECRET_CERT) });
  }
  return out;
}

function keyType(pem: string): string {
  const key = createPrivateKey(pem);
  return key.asymmetricKeyType === 'ec' ? `ec/${key.asymmetricKeyDetails?.namedCurve}` : `${key.asymmetricKeyType}/${key.asymmetricKeyDetails?.modulusLength}`;
}

async function online(poolId: string): Promise<string[]> {
  return (await e2e.backendPool(poolId)).workers.filter((w) => w.state !== 'offline').map((w) => w.id);
}

/** mosquitto's connection lines for a client id, from `from` on. */
function connections(from: number, workerId: string): string[] {
  return e2e.env.brokerOutput.join('').slice(from).split('\n').filter((l) => l.includes('New client connected') && l.includes(` as ${workerId} `));
}

describe('a pool moved from protocol version 1 to 2', () => {
  test('keeps its RSA workers untouched and connected; the workers it grows by get ECDSA P-256 keys', { timeout: 240_000 }, async () => {
    const pool = await e2e.createWorkerPool('upgrade', 2);
    expect(pool.token.protocolVersion).toBe(1);
    await waitFor('2 workers connected', async () => (await e2e.pool('upgrade')).status?.actualPoolSize === 2 && (await online(pool.id)).length === 2, 120_000);
    const before = await workerKeys();
    expect(before.size).toBe(2);
    for (const [id, k] of before) {
      expect(keyType(k.key)).toBe('rsa/2048');
      expect(new X509Certificate(k.cert).subject).toContain(`CN=${id}`);
      // Each connected to mosquitto exactly once so far.
      expect(connections(0, id)).toHaveLength(1);
    }
    const credentials = async (): Promise<string | undefined> =>
      (await e2e.pool('upgrade')).status?.conditions?.find((c) => c.type === 'CredentialsValid')?.message;
    expect(await credentials()).toBe('the token and private key were accepted; protocol version 1: new workers get RSA keys');

    // The backend is upgraded: it restarts speaking version 2; mosquitto, and the workers' sessions on it, stay.
    const mark = e2e.env.brokerOutput.join('').length;
    const logMark = e2e.env.logLines.length;
    e2e.env.options.protocolVersion = 2;
    await e2e.env.restartBackend();
    const token = await e2e.env.admin<{ token: string }>('GET', `/api/pools/${pool.id}/token`);
    expect(token.status).toBe(200);
    // The user puts the token the backend now issues into the pool's Secret; the private key stays.
    await e2e.writeSecret('upgrade-credentials', { token: token.body.token, privateKey: pool.privateKeyB64 });
    await waitFor('the pool to speak version 2', async () => (await credentials()) === 'the token and private key were accepted; protocol version 2: new workers get ECDSA P-256 keys', 60_000);

    await kubectlOk(['scale', 'workerpools', 'upgrade', '-n', e2e.namespace, '--replicas=4']);
    await waitFor('4 workers connected', async () => (await e2e.pool('upgrade')).status?.actualPoolSize === 4 && (await online(pool.id)).length === 4, 120_000);

    const after = await workerKeys();
    expect(after.size).toBe(4);
    for (const [id, k] of before) {
      // Same worker, same key, same certificate: nothing was registered again.
      expect(after.get(id)).toEqual(k);
      expect(connections(mark, id)).toEqual([]);
    }
    const added = [...after.keys()].filter((id) => !before.has(id));
    expect(added).toHaveLength(2);
    for (const id of added) {
      const k = after.get(id) as WorkerKeys;
      expect(keyType(k.key)).toBe('ec/prime256v1');
      const cert = new X509Certificate(k.cert);
      expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(cert.verify(new X509Certificate(e2e.env.backend.caPem).publicKey)).toBe(true);
      // Connected to mosquitto with its ECDSA certificate, whose CN is the identity.
      expect(connections(mark, id)).toHaveLength(1);
    }
    // The backend registered only the new workers after the upgrade.
    const registered = e2e.env.logLines.slice(logMark).filter((l) => /worker registered/.test(l));
    expect(registered.filter((l) => [...before.keys()].some((id) => l.includes(id)))).toEqual([]);
    expect(registered.filter((l) => added.some((id) => l.includes(id)))).toHaveLength(2);
    expect((await online(pool.id)).sort()).toEqual([...after.keys()].sort());
  });
});
