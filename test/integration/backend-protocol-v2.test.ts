/**
 * Protocol version 2 against the real reference backend, over real HTTPS and
 * real MQTT over TLS (the embedded broker and a real mosquitto from the
 * generated configuration): a worker of version 2 has an ECDSA P-256 key and
 * certificate, registers, connects and takes a run; RSA workers of version 1
 * keep working beside it; a backend told to speak only version 1 issues
 * version 1 tokens, so its workers get RSA keys, and refuses ECDSA CSRs.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCsr, generateEcdsaKeyPair, generateRsaKeyPair, TerminalBackendError, type WorkerCredentials } from '../../src/protocol/index.js';
import { connectWorker, createPool, registerWorker, runState, startEnv, waitFor, workerView, type BrokerKind, type Env, type Pool } from './backend-harness.js';

/** `rsa` or `ec/<curve>` of a certificate's key. */
function certKey(pem: string): string {
  const key = new X509Certificate(pem).publicKey;
  return key.asymmetricKeyType === 'ec' ? `ec/${key.asymmetricKeyDetails?.namedCurve}` : `${key.asymmetricKeyType}/${key.asymmetricKeyDetails?.modulusLength}`;
}

function privateKeyType(pem: string): string {
  const key = createPrivateKey(pem);
  return key.asymmetricKeyType === 'ec' ? `ec/${key.asymmetricKeyDetails?.namedCurve}` : `${key.asymmetricKeyType}/${key.asymmetricKeyDetails?.modulusLength}`;
}

/** The worker is online in the backend and a run submitted to its (own) pool reaches it and is accepted. */
async function takesARun(env: Env, pool: Pool, creds: WorkerCredentials): Promise<void> {
  const worker = await connectWorker(pool, creds);
  try {
    await waitFor('worker idle in the backend', async () => (await workerView(env, pool.id, creds.workerId))?.state === 'idle');
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    await waitFor('schedule received over the TLS session', () => worker.received.some((m) => m.type === 'schedule' && m.runId === run));
    await waitFor('run accepted by the backend', async () => (await runState(env, run)).state === 'preparing');
    expect((await runState(env, run)).workerId).toBe(creds.workerId);
    await worker.conn.sendRunStatus({ runId: run, status: 'finished' });
    await waitFor('run finished', async () => (await runState(env, run)).state === 'finished');
  } finally {
    await worker.conn.close();
  }
}

describe.each<BrokerKind>(['embedded', 'mosquitto'])('a backend of protocol version 2 with the %s broker', (kind) => {
  let env: Env;

  beforeAll(async () => {
    env = await startEnv(kind, { redeliverMs: 1_000 });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('issues version 2 tokens; a worker gets an ECDSA P-256 key and certificate, registers, connects over TLS and takes a run', async () => {
    const pool = await createPool(env, `v2-${kind}`);
    expect(pool.token.protocolVersion).toBe(2);
    const creds = await registerWorker(pool);
    expect(privateKeyType(creds.privateKeyPem)).toBe('ec/prime256v1');
    expect(certKey(creds.certificatePem)).toBe('ec/prime256v1');
    const cert = new X509Certificate(creds.certificatePem);
    expect(cert.verify(new X509Certificate(env.backend.caPem).publicKey)).toBe(true);
    expect(cert.subject).toContain(`CN=${creds.workerId}`);
    await takesARun(env, pool, creds);
    if (kind === 'mosquitto') {
      // mosquitto took the identity from the ECDSA certificate's CN (use_identity_as_username).
      expect(env.brokerOutput.join('')).toContain(`u'${creds.workerId}'`);
    }
    pool.client.close();
  });

  test('an RSA worker of version 1 registers and works beside it', async () => {
    const pool = await createPool(env, `v1-worker-${kind}`);
    const keys = await generateRsaKeyPair();
    const res = await pool.client.register(await createCsr(keys.privateKeyPem));
    expect(certKey(res.certificatePem)).toBe('rsa/2048');
    await takesARun(env, pool, { poolId: pool.id, workerId: res.workerId, certificatePem: res.certificatePem, privateKeyPem: keys.privateKeyPem, caPem: res.caPem });
    pool.client.close();
  });
});

describe('a backend told to speak only protocol version 1', () => {
  let env: Env;

  beforeAll(async () => {
    env = await startEnv('mosquitto', { protocolVersion: 1, redeliverMs: 1_000 });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('issues version 1 tokens, so its workers get RSA keys, which register, connect and take a run', async () => {
    const pool = await createPool(env, 'v1-only');
    expect(pool.token.protocolVersion).toBe(1);
    const creds = await registerWorker(pool);
    expect(privateKeyType(creds.privateKeyPem)).toBe('rsa/2048');
    expect(certKey(creds.certificatePem)).toBe('rsa/2048');
    await takesARun(env, pool, creds);
    pool.client.close();
  });

  test('refuses an ECDSA CSR, naming the key types it takes and the version it speaks', async () => {
    const pool = await createPool(env, 'v1-only-ec');
    const keys = await generateEcdsaKeyPair();
    const err = await pool.client.register(await createCsr(keys.privateKeyPem)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as Error).message).toContain('csr key must be RSA of at least 2048 bits, got ECDSA P-256 (this backend speaks protocol version 1)');
    expect((await env.admin<{ workers: unknown[] }>('GET', `/api/pools/${pool.id}`)).body.workers).toEqual([]);
    pool.client.close();
  });

  test('restarted at version 2, it gives the same pool a version 2 token and keeps its RSA workers', async () => {
    const pool = await createPool(env, 'upgraded');
    const creds = await registerWorker(pool);
    expect(certKey(creds.certificatePem)).toBe('rsa/2048');
    env.options.protocolVersion = 2;
    await env.restartBackend();
    try {
      const token = await env.admin<{ token: string }>('GET', `/api/pools/${pool.id}/token`);
      expect(token.status).toBe(200);
      const decoded = JSON.parse(Buffer.from(token.body.token, 'base64').toString()) as { protocolVersion: number; poolId: string };
      expect(decoded).toMatchObject({ protocolVersion: 2, poolId: pool.id });
      // The RSA worker registered under version 1 connects with its old certificate and works.
      await takesARun(env, pool, creds);
    } finally {
      env.options.protocolVersion = 1;
      pool.client.close();
    }
  });
});
