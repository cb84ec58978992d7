/**
 * The worker side of `reject` (issue 17): a WorkerConnection that receives a
 * schedule it cannot validate tells the backend so, with the run id and the
 * reason, instead of dropping it silently (which kept the run `scheduled`
 * and the worker busy forever). Real TLS and the embedded broker, with a CA
 * of the test's own.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort, normalizeSerial, startEmbeddedBroker, type EmbeddedBroker } from '../../src/backend/broker.js';
import { CertificateAuthority } from '../../src/backend/ca.js';
import { createLogger } from '../../src/backend/log.js';
import { generateRsaKeyPair, readonlyTopic, WorkerConnection, writeonlyTopic, type ToWorkerMessage } from '../../src/protocol/index.js';
import { waitFor } from './backend-harness.js';

let dir: string;
let broker: EmbeddedBroker;
let ca: CertificateAuthority;
let port: number;
const POOL = '01hrejectpoolaaaaaaaaaaaaa';
const WORKER = '01hrejectworkeraaaaaaaaaaa';
let workerCert = '';
let workerKey = '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-reject-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
  const server = await ca.issueServer(['127.0.0.1', 'localhost'], '127.0.0.1');
  const keys = await generateRsaKeyPair();
  workerKey = keys.privateKeyPem;
  workerCert = await ca.issueClient(keys.publicKeyPem, WORKER, POOL);
  const serial = normalizeSerial(new X509Certificate(workerCert).serialNumber);
  port = await freePort();
  broker = await startEmbeddedBroker({
    host: '127.0.0.1',
    port,
    caPem: ca.certPem,
    certPem: server.certPem,
    keyPem: server.keyPem,
    topicNamespace: 'spacelift',
    workerAuth: (id) => (id === WORKER ? { poolId: POOL, serial } : undefined),
    log: createLogger({ sink: () => undefined }),
  });
});
afterAll(async () => {
  await broker?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a schedule the worker cannot validate is answered with reject, naming the run and the reason', async () => {
  const received: ToWorkerMessage[] = [];
  const conn = new WorkerConnection({
    brokerUrl: `mqtts://127.0.0.1:${port}`,
    credentials: { poolId: POOL, workerId: WORKER, certificatePem: workerCert, privateKeyPem: workerKey, caPem: ca.certPem },
    onMessage: (m) => void received.push(m),
  });
  const connected = new Promise<void>((resolve) => conn.once('connect', () => resolve()));
  conn.start();
  await connected;

  const id = await ca.issueBackendClient();
  const backend = mqtt.connect(`mqtts://127.0.0.1:${port}`, { clientId: 'backend', clean: true, protocolVersion: 4, reconnectPeriod: 0, ca: ca.certPem, cert: id.certPem, key: id.keyPem });
  await new Promise<void>((resolve, reject) => {
    backend.once('connect', () => resolve());
    backend.once('error', reject);
  });
  const fromWorker: Array<{ type: string; runId?: string; reason?: string }> = [];
  backend.on('message', (_t, payload) => fromWorker.push(JSON.parse(payload.toString()) as { type: string }));
  await backend.subscribeAsync(writeonlyTopic(POOL, WORKER), { qos: 1 });
  const bad = { type: 'schedule', version: 1, runId: 'run-too-big', runnerImage: `r/${'x'.repeat(2000)}`, launcherImage: 'l', env: {}, timeouts: {} };
  await backend.publishAsync(readonlyTopic(POOL, WORKER), JSON.stringify(bad), { qos: 1 });
  // Garbage without a run id cannot be answered: counted and dropped only.
  await backend.publishAsync(readonlyTopic(POOL, WORKER), '{"type":"schedule"', { qos: 1 });

  const reject = await waitFor('the reject', () => fromWorker.find((m) => m.type === 'reject'));
  expect(reject).toEqual({ type: 'reject', version: 1, runId: 'run-too-big', reason: 'invalid "schedule" message: field "runnerImage" is longer than 1024 characters' });
  await waitFor('both rejected', () => conn.rejectedCount === 2);
  expect(fromWorker.filter((m) => m.type === 'reject')).toHaveLength(1);
  expect(received).toEqual([]);
  await new Promise<void>((resolve) => backend.end(true, {}, () => resolve()));
  await conn.close();
});
