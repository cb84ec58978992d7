/**
 * The reference backend against both brokers (embedded aedes, and a real
 * mosquitto configured by `writeMosquittoConfig`), over real TLS: ACL
 * confinement, certificate authentication, message validation, delivery to a
 * worker that was offline, and restarts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import forge from 'node-forge';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../../src/backend/ca.js';
import { generateRsaKeyPair, readonlyTopic, writeonlyTopic, type WorkerCredentials } from '../../src/protocol/index.js';
import {
  connectWorker,
  createPool,
  registerWorker,
  runState,
  startEnv,
  waitFor,
  workerView,
  type BrokerKind,
  type Env,
  type Pool,
} from './backend-harness.js';

/** A raw MQTT client (not WorkerConnection) so tests can misbehave. */
function rawClient(brokerUrl: string, opts: { clientId: string; cert?: string; key?: string; ca: string }): MqttClient {
  return mqtt.connect(brokerUrl, {
    clientId: opts.clientId,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ca: opts.ca,
    ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
    rejectUnauthorized: true,
  });
}

/** Resolves with 'connected' on CONNACK, or 'refused' when the connection ends first. */
function connectOutcome(client: MqttClient): Promise<'connected' | 'refused'> {
  return new Promise((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('error', () => resolve('refused'));
    client.once('close', () => resolve('refused'));
  });
}

function rawWorker(pool: Pool, creds: WorkerCredentials): MqttClient {
  return rawClient(pool.token.brokerUrl, { clientId: creds.workerId, cert: creds.certificatePem, key: creds.privateKeyPem, ca: creds.caPem });
}

/** The granted QoS, or 128 when refused (mqtt.js rejects the promise form on 128). */
function subscribeGranted(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve, reject) => {
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      // On a failure code mqtt.js reports an error and echoes the requested QoS in `granted`.
      if (err && /Subscribe error/.test(err.message)) resolve(128);
      else if (err) reject(err);
      else resolve(granted?.[0]?.qos ?? -1);
    });
  });
}

async function end(client: MqttClient): Promise<void> {
  await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
}

/** A self-made CA and a client certificate for `cn` that the backend never issued. */
async function foreignCert(cn: string): Promise<{ cert: string; key: string }> {
  const caKeys = await generateRsaKeyPair();
  const leafKeys = await generateRsaKeyPair();
  const ca = forge.pki.createCertificate();
  ca.publicKey = forge.pki.publicKeyFromPem(caKeys.publicKeyPem);
  ca.serialNumber = '01';
  ca.validity.notBefore = new Date(Date.now() - 60_000);
  ca.validity.notAfter = new Date(Date.now() + 3600_000);
  ca.setSubject([{ name: 'commonName', value: 'evil ca' }]);
  ca.setIssuer([{ name: 'commonName', value: 'evil ca' }]);
  ca.setExtensions([{ name: 'basicConstraints', cA: true }]);
  ca.sign(forge.pki.privateKeyFromPem(caKeys.privateKeyPem), forge.md.sha256.create());
  const leaf = forge.pki.createCertificate();
  leaf.publicKey = forge.pki.publicKeyFromPem(leafKeys.publicKeyPem);
  leaf.serialNumber = '02';
  leaf.validity.notBefore = new Date(Date.now() - 60_000);
  leaf.validity.notAfter = new Date(Date.now() + 3600_000);
  leaf.setSubject([{ name: 'commonName', value: cn }]);
  leaf.setIssuer(ca.subject.attributes);
  leaf.sign(forge.pki.privateKeyFromPem(caKeys.privateKeyPem), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(leaf), key: leafKeys.privateKeyPem };
}

describe.each<BrokerKind>(['embedded', 'mosquitto'])('backend with the %s broker', (kind) => {
  let env: Env;
  let pool: Pool;
  const secrets: string[] = [];

  beforeAll(async () => {
    // Long redelivery so that tests of the broker's persistent session are not helped by re-sends.
    env = await startEnv(kind, { redeliverMs: 3_600_000 });
    pool = await createPool(env, `pool-${kind}`);
    secrets.push(env.backend.adminToken, pool.tokenText, pool.privateKeyB64, pool.privateKeyPem);
  });

  afterAll(async () => {
    pool?.client.close();
    await env?.close();
  });

  test('a worker cannot subscribe to another worker topic, nor publish on another writeonly topic', async () => {
    const pool = await createPool(env, `acl-${kind}`);
    const a = await registerWorker(pool);
    const b = await registerWorker(pool);
    secrets.push(a.privateKeyPem, a.certificatePem, b.privateKeyPem);
    const workerB = await connectWorker(pool, b);

    // Worker A, misbehaving: subscribes to its own topic (allowed) and B's (refused).
    const attacker = rawWorker(pool, a);
    expect(await connectOutcome(attacker)).toBe('connected');
    const seen: Array<{ topic: string; payload: string }> = [];
    attacker.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    expect(await subscribeGranted(attacker, readonlyTopic(pool.id, a.workerId))).toBe(1);
    const foreign = await subscribeGranted(attacker, readonlyTopic(pool.id, b.workerId));
    const wildcard = await subscribeGranted(attacker, `spacelift/readonly/${pool.id}/+`);
    // aedes refuses in the SUBACK; mosquitto 2.0 grants and then filters each
    // message through the read ACL. Either way nothing may arrive (below).
    if (kind === 'embedded') expect([foreign, wildcard]).toEqual([128, 128]);
    await attacker.publishAsync(writeonlyTopic(pool.id, a.workerId), JSON.stringify({ type: 'state', version: 1, state: 'idle' }), { qos: 1 });
    await waitFor('A idle', async () => (await workerView(env, pool.id, a.workerId))?.state === 'idle');
    await waitFor('B idle', async () => (await workerView(env, pool.id, b.workerId))?.state === 'idle');

    // Two runs for two idle workers: one schedule goes to B's topic, one to A's.
    const r1 = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    const r2 = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    const bRun = await waitFor('B got a schedule', () => workerB.received.find((m) => m.type === 'schedule')?.runId);
    const aRun = bRun === r1 ? r2 : r1;
    await waitFor('A got its schedule', () => seen.some((m) => m.payload.includes(aRun)));
    // Sentinel: a stop for A's run is published after both schedules; once A has
    // it, a leaked copy of B's schedule would have arrived before it.
    await env.admin('POST', `/api/runs/${aRun}/stop`);
    await waitFor('A got the stop', () => seen.some((m) => m.payload.includes('"stop"')));
    expect(seen.every((m) => m.topic === readonlyTopic(pool.id, a.workerId))).toBe(true);
    expect(seen.some((m) => m.payload.includes(bRun))).toBe(false);

    // A forges a failure of B's run on B's writeonly topic.
    await waitFor('B accepted', async () => (await runState(env, bRun)).state === 'preparing');
    const forged = JSON.stringify({ type: 'run-status', version: 1, runId: bRun, status: 'failed', reason: 'forged' });
    const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
    const puback = attacker.publishAsync(writeonlyTopic(pool.id, b.workerId), forged, { qos: 1 }).then(
      () => 'acked',
      () => 'failed',
    );
    // mosquitto acknowledges and drops; aedes drops the connection.
    await Promise.race([puback, closed]);
    await end(attacker);
    // Sentinel from a fresh connection: once the backend has processed it, the forged message would have been processed too.
    const again = rawWorker(pool, a);
    expect(await connectOutcome(again)).toBe('connected');
    await again.publishAsync(writeonlyTopic(pool.id, a.workerId), JSON.stringify({ type: 'state', version: 1, state: 'draining' }), { qos: 1 });
    await waitFor('A draining', async () => (await workerView(env, pool.id, a.workerId))?.state === 'draining');
    expect((await runState(env, bRun)).state).toBe('preparing');
    await end(again);
    await workerB.conn.close();
  });

  test('clients without a certificate, or with one from another CA, cannot connect', async () => {
    const pool = await createPool(env, `certs-${kind}`);
    const creds = await registerWorker(pool);
    const noCert = rawClient(pool.token.brokerUrl, { clientId: creds.workerId, ca: pool.token.caCert });
    expect(await connectOutcome(noCert)).toBe('refused');
    await end(noCert);

    const evil = await foreignCert(creds.workerId);
    const wrongCa = rawClient(pool.token.brokerUrl, { clientId: creds.workerId, cert: evil.cert, key: evil.key, ca: pool.token.caCert });
    expect(await connectOutcome(wrongCa)).toBe('refused');
    await end(wrongCa);

    // The real certificate works, so the refusals above are about the certificates.
    const good = rawWorker(pool, creds);
    expect(await connectOutcome(good)).toBe('connected');
    await end(good);
  });

  test('malformed and unknown messages are rejected and counted, and the backend keeps working', async () => {
    const pool = await createPool(env, `garbage-${kind}`);
    const creds = await registerWorker(pool);
    const before = env.backend.counters()['rejectedMessages'] ?? 0;
    const client = rawWorker(pool, creds);
    expect(await connectOutcome(client)).toBe('connected');
    const topic = writeonlyTopic(pool.id, creds.workerId);
    const bad = [
      '{not json',
      JSON.stringify({ type: 'teleport', version: 1 }),
      JSON.stringify({ type: 'state', version: 2, state: 'idle' }),
      JSON.stringify({ type: 'run-status', version: 1, runId: 42, status: 'running' }),
      JSON.stringify({ type: 'schedule', version: 1, runId: 'X', runnerImage: 'a', launcherImage: 'b', env: {} }),
    ];
    for (const payload of bad) await client.publishAsync(topic, payload, { qos: 1 });
    await waitFor('five rejections counted', () => (env.backend.counters()['rejectedMessages'] ?? 0) - before >= bad.length);
    expect((env.backend.counters()['rejectedMessages'] ?? 0) - before).toBe(bad.length);
    await end(client);

    // Still scheduling.
    const worker = await connectWorker(pool, creds);
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    await waitFor('run accepted after the garbage', async () => (await runState(env, run)).state === 'preparing');
    expect(worker.received.some((m) => m.type === 'schedule' && m.runId === run)).toBe(true);
    await worker.conn.sendRunStatus({ runId: run, status: 'finished', exitCode: 0 });
    await waitFor('run finished', async () => (await runState(env, run)).state === 'finished');
    await worker.conn.close();
  });

  test('a run scheduled while the worker session is offline is delivered when it reconnects', async () => {
    // Isolated pool, so runs from other tests cannot take this worker.
    const own = await createPool(env, `offline-${kind}`);
    const creds = await registerWorker(own);
    const first = await connectWorker(own, creds);
    await waitFor('worker idle', async () => (await workerView(env, own.id, creds.workerId))?.state === 'idle');
    // A graceful disconnect (a controller restart): no will, the session stays in the broker.
    await first.conn.close();
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    await waitFor('run scheduled to the offline worker', async () => (await runState(env, run)).state === 'scheduled');
    await waitFor('schedule published', () => (env.backend.counters()['schedulesSent'] ?? 0) > 0);

    const second = await connectWorker(own, creds);
    await waitFor('schedule delivered from the persistent session', () => second.received.some((m) => m.type === 'schedule' && m.runId === run));
    await waitFor('run accepted', async () => (await runState(env, run)).state === 'preparing');

    // A crash instead (the will marks it offline): the next run waits in the queue, then goes out on reconnect.
    await second.conn.sendRunStatus({ runId: run, status: 'finished' });
    await waitFor('run finished', async () => (await runState(env, run)).state === 'finished');
    await waitFor('worker idle again', async () => (await workerView(env, own.id, creds.workerId))?.state === 'idle');
    await second.conn.destroy();
    await waitFor('worker offline via its will', async () => (await workerView(env, own.id, creds.workerId))?.state === 'offline');
    const run2 = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    expect((await runState(env, run2)).state).toBe('queued');
    const third = await connectWorker(own, creds);
    await waitFor('queued run delivered after reconnect', () => third.received.some((m) => m.type === 'schedule' && m.runId === run2));
    await waitFor('run2 accepted', async () => (await runState(env, run2)).state === 'preparing');
    await third.conn.close();
    own.client.close();
  });

  /** A pool of one connected worker that has accepted a run. */
  async function workerWithRun(name: string) {
    const own = await createPool(env, name);
    const creds = await registerWorker(own);
    const worker = await connectWorker(own, creds);
    await waitFor('worker idle', async () => (await workerView(env, own.id, creds.workerId))?.state === 'idle');
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    await waitFor('run accepted', async () => (await runState(env, run)).state === 'preparing');
    return { own, creds, worker, run };
  }

  test('a backend restart loses no pool, worker or run, and messages sent meanwhile arrive', async () => {
    const { own, creds, worker, run } = await workerWithRun(`restart-${kind}`);
    const queued = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    await env.admin('POST', `/api/pools/${own.id}/workers/${creds.workerId}/drain`);
    const tokenBefore = env.backend.adminToken;

    await env.stopBackend();
    // While the backend is down the worker finishes its run; the status must not be lost.
    const sent = worker.conn.sendRunStatus({ runId: run, status: 'finished', exitCode: 0 });
    await env.startBackendAgain();
    await sent;

    expect(env.backend.adminToken).toBe(tokenBefore);
    const poolView = await env.admin<{ id: string; name: string; pendingRuns: number; workers: Array<{ id: string; drained: boolean }> }>('GET', `/api/pools/${own.id}`);
    expect(poolView.status).toBe(200);
    expect(poolView.body.name).toBe(`restart-${kind}`);
    expect(poolView.body.workers.map((w) => [w.id, w.drained])).toEqual([[creds.workerId, true]]);
    await waitFor('status sent during the restart applied', async () => (await runState(env, run)).state === 'finished');
    expect((await runState(env, queued)).state).toBe('queued');
    expect(poolView.body.pendingRuns).toBe(1);

    // The pool credentials still work, and undraining lets the queued run go to the reconnected worker.
    await own.client.undrain(creds.workerId);
    await waitFor('queued run delivered after the restart', () => worker.received.some((m) => m.type === 'schedule' && m.runId === queued));
    await waitFor('queued run accepted', async () => (await runState(env, queued)).state === 'preparing');
    await worker.conn.close();
    own.client.close();
  });

  test('messages of a thousand workers\' worth, sent while the backend is away, all reach it, the run\'s end after them', async () => {
    const { own, worker, run } = await workerWithRun(`backlog-${kind}`);

    await env.stopBackend();
    // What 1000 workers heartbeating every 30 s send in 45 s, then the run's end.
    const sent = [...Array.from({ length: 1500 }, () => worker.conn.setState('busy', run)), worker.conn.sendRunStatus({ runId: run, status: 'finished', exitCode: 0 })];
    // mosquitto acknowledges them all to the worker while the backend is away, and must keep them for it;
    // the embedded broker is away with the backend, and the worker holds the run's end until it is back.
    if (kind === 'mosquitto') await Promise.all(sent);
    await env.startBackendAgain();
    await Promise.all(sent);
    await waitFor('the run\'s end, sent after 1500 others, applied', async () => (await runState(env, run)).state === 'finished', 60_000);
    expect(env.brokerOutput.join('')).not.toContain('dropped');
    await worker.conn.close();
    own.client.close();
  }, 120_000);

  test('drain reports busy workers; stats count them; deregistration requeues an unaccepted run', async () => {
    const own = await createPool(env, `drain-${kind}`);
    const creds = await registerWorker(own);
    const worker = await connectWorker(own, creds, { autoAccept: false });
    await waitFor('worker idle', async () => (await own.client.poolStats()).workers.idle === 1);
    expect(await own.client.drain(creds.workerId)).toEqual({ busy: false });
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: own.id })).body.id;
    expect((await own.client.poolStats()).pendingRuns).toBe(1);
    await own.client.undrain(creds.workerId);
    await waitFor('schedule received', () => worker.received.some((m) => m.type === 'schedule' && m.runId === run));
    expect(await own.client.drain(creds.workerId)).toEqual({ busy: true });
    const stats = await own.client.poolStats();
    expect(stats.workers).toMatchObject({ total: 1, busy: 1, drained: 1 });
    await own.client.deregister(creds.workerId);
    expect((await runState(env, run)).state).toBe('queued');
    // Idempotent.
    await own.client.deregister(creds.workerId);
    await worker.conn.destroy();
    own.client.close();
  });

  test('the backend log holds no key material, certificates or tokens', async () => {
    expect(env.logLines.length).toBeGreaterThan(10);
    const log = env.logLines.join('\n');
    expect(log).not.toContain('BEGIN');
    expect(log).not.toContain('PRIVATE KEY');
    for (const s of secrets) {
      expect(log.includes(s)).toBe(false);
      // Also no recognisable slice of one (the base64 body of a PEM, say).
      const body = s.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      expect(log.includes(body.slice(40, 104))).toBe(false);
    }
    const caKey = await readFile(path.join(env.dataDir, 'ca-key.pem'), 'utf8');
    expect(log.includes(caKey.split('\n')[2] ?? 'x')).toBe(false);
  });

  if (kind === 'mosquitto') {
    test('the worker side rejects and counts malformed messages without crashing', async () => {
      const own = await createPool(env, 'worker-side');
      const creds = await registerWorker(own);
      const worker = await connectWorker(own, creds);
      // The backend must be down so that this test can use the backend identity itself.
      await env.stopBackend();
      try {
        const ca = await CertificateAuthority.loadOrCreate(env.dataDir);
        const id = await ca.issueBackendClient();
        const sender = rawClient(own.token.brokerUrl, { clientId: 'backend', cert: id.certPem, key: id.keyPem, ca: ca.certPem });
        expect(await connectOutcome(sender)).toBe('connected');
        const topic = readonlyTopic(own.id, creds.workerId);
        for (const p of ['{', JSON.stringify({ type: 'state', version: 1, state: 'idle' }), JSON.stringify({ type: 'schedule', version: 9 }), JSON.stringify({ type: 'stop', version: 1 })]) {
          await sender.publishAsync(topic, p, { qos: 1 });
        }
        await sender.publishAsync(topic, JSON.stringify({ type: 'stop', version: 1, runId: 'R1' }), { qos: 1 });
        await waitFor('valid stop delivered after the garbage', () => worker.received.some((m) => m.type === 'stop' && m.runId === 'R1'));
        expect(worker.conn.rejectedCount).toBe(4);
        expect(worker.received).toHaveLength(1);
        expect(worker.conn.connected).toBe(true);
        await end(sender);
      } finally {
        await worker.conn.close();
        await env.startBackendAgain();
        own.client.close();
      }
    });
  }
});
