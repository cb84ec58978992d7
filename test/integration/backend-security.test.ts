/**
 * What a client without credentials, or with stale ones, can do to the
 * reference backend (issue 17): worker certificates bound to their
 * registration by serial and revoked on re-key and deregistration (with both
 * brokers), ids never reused across pools, bounded certificate lifetimes,
 * request limits and timeouts, runs validated like workers validate them, a
 * schedule rejected by its worker failing the run, durable nonces.
 */
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCsr, generateRsaKeyPair, readonlyTopic, signRequest, workerApiPaths, writeonlyTopic, type WorkerCredentials } from '../../src/protocol/index.js';
import { stateOnDisk } from '../support/backend-state.js';
import { createPool, registerWorker, request, runState, startEnv, waitFor, workerView, type BrokerKind, type Env, type Pool } from './backend-harness.js';

function rawWorker(pool: Pool, creds: WorkerCredentials): MqttClient {
  return mqtt.connect(pool.token.brokerUrl, {
    clientId: creds.workerId,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ca: creds.caPem,
    cert: creds.certificatePem,
    key: creds.privateKeyPem,
    rejectUnauthorized: true,
  });
}

/** 'connected' on CONNACK, 'refused' when the connection ends first. */
function outcome(client: MqttClient): Promise<'connected' | 'refused'> {
  return new Promise((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('error', () => resolve('refused'));
    client.once('close', () => resolve('refused'));
  });
}

async function tryConnect(pool: Pool, creds: WorkerCredentials): Promise<'connected' | 'refused'> {
  const c = rawWorker(pool, creds);
  const result = await outcome(c);
  await new Promise<void>((resolve) => c.end(true, {}, () => resolve()));
  return result;
}

/** Registers `workerId` again with a new key: the backend issues a new certificate and revokes the old one. */
async function rekey(pool: Pool, creds: WorkerCredentials): Promise<WorkerCredentials> {
  const keys = await generateRsaKeyPair();
  const res = await pool.client.register(await createCsr(keys.privateKeyPem), creds.workerId);
  return { ...creds, certificatePem: res.certificatePem, privateKeyPem: keys.privateKeyPem };
}

describe.each<BrokerKind>(['embedded', 'mosquitto'])('worker certificates with the %s broker', (kind) => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv(kind);
  });
  afterAll(async () => {
    await env?.close();
  });

  test('only the certificate of the latest registration connects: re-keying revokes the old one at once', async () => {
    const pool = await createPool(env, `rekey-${kind}`);
    const first = await registerWorker(pool);
    expect(await tryConnect(pool, first)).toBe('connected');
    const second = await rekey(pool, first);
    expect(new X509Certificate(second.certificatePem).serialNumber).not.toBe(new X509Certificate(first.certificatePem).serialNumber);
    // mosquitto rereads its CRL on the SIGHUP the backend sends after writing it.
    await waitFor('the old certificate refused', async () => (await tryConnect(pool, first)) === 'refused');
    expect(await tryConnect(pool, second)).toBe('connected');
    // Repeated: still only the newest.
    expect(await tryConnect(pool, first)).toBe('refused');
    pool.client.close();
  });

  test('deregistering a worker disconnects it and revokes its certificate', async () => {
    const pool = await createPool(env, `dereg-${kind}`);
    const creds = await registerWorker(pool);
    const client = rawWorker(pool, creds);
    expect(await outcome(client)).toBe('connected');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await pool.client.deregister(creds.workerId);
    await closed;
    client.end(true);
    await waitFor('its certificate refused', async () => (await tryConnect(pool, creds)) === 'refused');
    pool.client.close();
  });

  test('a worker id is never registered in another pool, even after deregistration', async () => {
    const a = await createPool(env, `reuse-a-${kind}`);
    const b = await createPool(env, `reuse-b-${kind}`);
    const workerId = `01jreuse${kind === 'embedded' ? 'e' : 'm'}aaaaaaaaaaaaaaaaa`;
    const keys = await generateRsaKeyPair();
    const inA = await a.client.register(await createCsr(keys.privateKeyPem), workerId);
    const credsA: WorkerCredentials = { poolId: a.id, workerId, certificatePem: inA.certificatePem, privateKeyPem: keys.privateKeyPem, caPem: inA.caPem };
    await a.client.deregister(workerId);
    const err = await b.client.register(await createCsr(keys.privateKeyPem), workerId).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/409: worker id "01jreuse.*" was used in another pool and cannot be registered again/);
    await waitFor('the old certificate refused', async () => (await tryConnect(a, credsA)) === 'refused');
    a.client.close();
    b.client.close();
  });

  test('a client that announces a packet above the limit is disconnected before it is buffered', async () => {
    const pool = await createPool(env, `packet-${kind}`);
    const creds = await registerWorker(pool);
    const client = rawWorker(pool, creds);
    expect(await outcome(client)).toBe('connected');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(writeonlyTopic(pool.id, creds.workerId), Buffer.alloc(2 * 1024 * 1024, 0x61), { qos: 0 });
    await closed;
    client.end(true);
    // A message of normal size still goes through.
    const again = rawWorker(pool, creds);
    expect(await outcome(again)).toBe('connected');
    await again.publishAsync(writeonlyTopic(pool.id, creds.workerId), JSON.stringify({ type: 'state', version: 1, state: 'idle' }), { qos: 1 });
    await waitFor('worker idle', async () => (await workerView(env, pool.id, creds.workerId))?.state === 'idle');
    await new Promise<void>((resolve) => again.end(true, {}, () => resolve()));
    pool.client.close();
  });
});

describe('backend API limits and checks', () => {
  let env: Env;
  let pool: Pool;
  beforeAll(async () => {
    env = await startEnv('embedded', {
      workerCertLifetimeMs: 3600_000,
      redeliverMs: 100,
      limits: { headersTimeoutMs: 500, requestTimeoutMs: 1_500, handshakeTimeoutMs: 500, maxConnections: 8 },
    });
    pool = await createPool(env, 'limits');
  });
  afterAll(async () => {
    pool?.client.close();
    await env?.close();
  });

  const apiPort = (): number => Number(new URL(env.backend.apiUrl).port);

  /** Sends raw bytes over TLS; resolves with what came back when the server closed the connection. */
  function raw(send: (s: TLSSocket) => void, timeoutMs = 10_000): Promise<{ text: string; ms: number }> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: apiPort(), ca: env.backend.caPem, servername: 'localhost' }, () => send(s));
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ text: Buffer.concat(chunks).toString(), ms: Date.now() - started }));
      setTimeout(() => reject(new Error('the server kept the connection open')), timeoutMs).unref();
    });
  }

  test('worker certificates live as long as configured (default 30 days)', async () => {
    const creds = await registerWorker(pool);
    const cert = new X509Certificate(creds.certificatePem);
    const lifetime = Date.parse(cert.validTo) - Date.now();
    expect(lifetime).toBeGreaterThan(3500_000);
    expect(lifetime).toBeLessThanOrEqual(3600_000);
  });

  test('a body above the limit gets 413 with Connection: close, unread', async () => {
    const res = await raw((s) => s.write(`POST /api/runs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${env.backend.adminToken}\r\ncontent-type: application/json\r\ncontent-length: 5000000\r\n\r\n{"poolId":`));
    expect(res.text).toMatch(/^HTTP\/1.1 413 /);
    expect(res.text.toLowerCase()).toContain('connection: close');
    expect(res.text).toContain('larger than 1048576');
  });

  test('an unauthenticated request is answered before its body is read', async () => {
    // 900 kB announced, none sent: a server reading the body first would wait for it.
    const res = await raw((s) => s.write('POST /api/runs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n'));
    expect(res.text).toMatch(/^HTTP\/1.1 401 /);
    expect(res.text.toLowerCase()).toContain('connection: close');
    // Signed calls too: the signature (over the body hash header) is checked before the body is read.
    const p = workerApiPaths.register(pool.id);
    const headers = signRequest({ method: 'POST', path: p, poolId: pool.id, body: Buffer.from('{}'), privateKey: (await generateRsaKeyPair()).privateKeyPem });
    const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const signed = await raw((s) => s.write(`POST ${p} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n${lines}\r\n`));
    expect(signed.text).toMatch(/^HTTP\/1.1 401 /);
    expect(signed.text).toContain('does not verify');
  });

  test('slow request heads, slow bodies and silent TLS clients are cut off', async () => {
    const head = await raw((s) => s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n'));
    expect(head.ms).toBeLessThan(5_000);
    const body = await raw((s) => s.write(`POST /api/runs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${env.backend.adminToken}\r\ncontent-length: 100\r\n\r\n{`));
    expect(body.ms).toBeLessThan(5_000);
    const silent = await new Promise<number>((resolve) => {
      const started = Date.now();
      const s = netConnect(apiPort(), '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => resolve(Date.now() - started));
    });
    expect(silent).toBeLessThan(5_000);
  });

  test('connections above the cap are closed at once', async () => {
    const held: TLSSocket[] = [];
    let closed = 0;
    for (let i = 0; i < 12 && closed === 0; i++) {
      const result = await new Promise<'connected' | 'closed'>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: apiPort(), ca: env.backend.caPem, servername: 'localhost' }, () => {
          held.push(s);
          resolve('connected');
        });
        s.on('error', () => resolve('closed'));
        s.on('close', () => resolve('closed'));
      });
      if (result === 'closed') closed++;
    }
    expect(closed).toBe(1);
    // The cap is 8; the harness's own keep-alive connections count too.
    expect(held.length).toBeLessThanOrEqual(8);
    expect(held.length).toBeGreaterThan(4);
    for (const s of held) s.destroy();
    await waitFor('a connection is served again', async () => (await request(env.backend, 'GET', '/healthz').catch(() => ({ status: 0 }))).status === 200);
  });

  test.each([
    [{ timeouts: { runSeconds: 8 * 24 * 3600 } }, 'field "timeouts.runSeconds" must be between 1 and 604800, got 691200'],
    [{ env: { 'A\nB': 'x' } }, 'field "env" has an invalid variable name "A\\nB"'],
    [{ runnerImage: `registry.example.com/${'a'.repeat(2000)}` }, 'field "runnerImage" is longer than 1024 characters'],
    [{ launcherImage: 'has space' }, 'field "launcherImage" has an invalid value "has space"'],
  ])('a run the workers would reject is refused with 400 naming the field: %j', async (fields, message) => {
    const res = await env.admin<{ error: string }>('POST', '/api/runs', { poolId: pool.id, ...fields });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain(message);
  });

  test('a schedule its worker rejects 3 times fails the run with the reason and frees the worker', async () => {
    const own = await createPool(env, 'rejects');
    const creds = await registerWorker(own);
    const client = rawWorker(own, creds);
    expect(await outcome(client)).toBe('connected');
    let rejections = 0;
    client.on('message', (_topic, payload) => {
      const msg = JSON.parse(payload.toString()) as { type: string; runId: string };
      if (msg.type !== 'schedule') return;
      rejections++;
      client.publish(writeonlyTopic(own.id, creds.workerId), JSON.stringify({ type: 'reject', version: 1, runId: msg.runId, reason: 'field "env" is too large for this worker' }), { qos: 1 });
    });
    await client.subscribeAsync(readonlyTopic(own.id, creds.workerId), { qos: 1 });
    await client.publishAsync(writeonlyTopic(own.id, creds.workerId), JSON.stringify({ type: 'state', version: 1, state: 'idle' }), { qos: 1 });
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    await waitFor('run failed', async () => (await runState(env, run)).state === 'failed');
    expect((await runState(env, run)).reason).toBe('the worker rejected the run\'s schedule 3 times: field "env" is too large for this worker');
    expect(rejections).toBe(3);
    // Free: the next run goes to the same worker.
    const next = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    await waitFor('next run sent to the worker', async () => (await runState(env, next)).state === 'scheduled' || (await runState(env, next)).state === 'failed');
    await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
    own.client.close();
  });

  test('the nonce of a read-only signed call is on disk before the answer', async () => {
    const p = workerApiPaths.stats(pool.id);
    const headers = signRequest({ method: 'GET', path: p, poolId: pool.id, body: Buffer.alloc(0), privateKey: pool.privateKeyPem });
    const res = await request(env.backend, 'GET', p, undefined, undefined, headers);
    expect(res.status).toBe(200);
    // Read at once, as a crash right after the answer would leave it.
    const state = await stateOnDisk(env.dataDir);
    expect(Object.keys(state.nonces)).toContain(`${pool.id}/${headers['x-wp-nonce']}`);
  });
});

