/**
 * The scale-out's same-run limit (issue 19). Since protocol version 2 a
 * worker's key costs well under a millisecond, so "N keys / cores" no longer
 * says what a scale-out must cost. What it must cost is what the world
 * outside the controller has to do for N workers, measured on the same
 * machine just after the scale-out:
 *
 * - keys: N x the median key of the pool's type, over the cores (still the
 *   whole limit for an RSA pool of protocol version 1);
 * - API writes: the very writes the controller made for the scale-out, by
 *   verb and resource as kube-apiserver counted them (`apiserver_request_total`),
 *   made again by a bare {@link KubeClient} on copies of the controller's own
 *   objects in another namespace, as many sequences at once as the controller
 *   has Worker reconcile slots;
 * - broker sessions: N bare MQTT clients (TLS with their own certificate,
 *   persistent session, the worker's subscription and one `state` message
 *   acknowledged), as many at once.
 *
 * Registration with the backend (HTTPS, a certificate signed per worker) is
 * timed too and shown beside it, but is not part of the limit, as the issue
 * defines it.
 */
import type { BenchBackend } from './lib/backend.js';
import mqtt, { type MqttClient } from 'mqtt';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject } from '../src/api/types.js';
import { BackendClient } from '../src/protocol/client.js';
import { createCsr, generateWorkerKeyPair, workerKeyTypeFor, type PemKeyPair } from '../src/protocol/keys.js';
import { encodeMessage, type StateMessage } from '../src/protocol/messages.js';
import { decodeSecretPrivateKey, parsePoolToken } from '../src/protocol/token.js';
import { readonlyTopic, writeonlyTopic } from '../src/protocol/topics.js';
import { MESSAGE_VERSION } from '../src/protocol/version.js';
import { DEFAULT_WORKER_CONCURRENCY } from '../src/controller/manager.js';
import { EVENTS, SECRETS, type CoreEvent, type KubeClient, type Secret } from '../src/runtime/k8s-client.js';
import type { RequestCounts } from './lib/apiserver-metrics.js';
import { withConcurrency } from './lib/concurrency.js';
import { nowMs } from './lib/watch.js';


export interface ScaleLimit {
  /** Writes the controller made during the scale-out, per worker, by "VERB resource[/subresource]". */
  writesPerWorker: Record<string, number>;
  /** The same writes by a bare client, s. */
  apiSeconds: number;
  /** N bare broker sessions, s. */
  brokerSeconds: number;
  /** N x median key of the pool's type / cores, s. */
  keySeconds: number;
  /** keys + API writes + broker sessions, s. */
  seconds: number;
  /** N registrations by a bare protocol client, s (shown apart; not in the limit). */
  registerSeconds: number;
  concurrency: number;
  /** Write kinds the bare client has no copy for (counted in writesPerWorker, missing from apiSeconds). */
  notReplayed: string[];
}

/** Kinds of write a scale-out makes, in the order a worker's objects see them. */
const REPLAY_ORDER = [
  'POST workers',
  'POST secrets',
  'PATCH workers',
  'PUT workers',
  'PUT secrets',
  'PATCH secrets',
  'PATCH workers/status',
  'PUT workers/status',
  'POST events',
  'PATCH events',
  'PATCH workerpools/status',
  'PUT workerpools/status',
] as const;
type Replayable = (typeof REPLAY_ORDER)[number];

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Writes on the controller's resources (not its Lease) from kube-apiserver's counters. */
export function controllerWrites(counts: RequestCounts, resources: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, n] of counts) {
    const [verb = '', res = ''] = key.split(' ');
    if (WRITE_VERBS.has(verb) && resources.includes(res.split('/')[0] ?? '')) out.set(key, n);
  }
  return out;
}

/**
 * How many of each write worker `i` of `n` makes: `total` spread evenly, the
 * first `total mod n` workers one more.
 */
export function share(total: number, n: number, i: number): number {
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

export interface ScaleLimitInput {
  /** A fresh client of the bench's own (warm sockets are made before timing). */
  client: KubeClient;
  controllerNamespace: string;
  bareNamespace: string;
  poolName: string;
  workers: number;
  /** kube-apiserver's counters over the scale-out. */
  writes: Map<string, number>;
  keyMedianMs: number;
  cores: number;
  backend: BenchBackend;
  log: (line: string) => void;
}

export async function measureScaleLimit(input: ScaleLimitInput): Promise<ScaleLimit> {
  const n = input.workers;
  const api = await replayWrites(input);
  input.log(`scale-out limit: ${n} workers' API writes by a bare client: ${api.seconds.toFixed(2)} s`);
  const broker = await bareSessions(input);
  input.log(`scale-out limit: ${n} bare broker sessions: ${broker.sessionSeconds.toFixed(2)} s (registrations ${broker.registerSeconds.toFixed(2)} s, not in the limit)`);
  const keySeconds = (n * input.keyMedianMs) / input.cores / 1000;
  return {
    writesPerWorker: Object.fromEntries([...input.writes].sort().map(([k, v]) => [k, Math.round((v / n) * 100) / 100])),
    apiSeconds: api.seconds,
    brokerSeconds: broker.sessionSeconds,
    keySeconds,
    seconds: keySeconds + api.seconds + broker.sessionSeconds,
    registerSeconds: broker.registerSeconds,
    concurrency: DEFAULT_WORKER_CONCURRENCY,
    notReplayed: api.notReplayed,
  };
}

async function replayWrites(input: ScaleLimitInput): Promise<{ seconds: number; notReplayed: string[] }> {
  const { client, controllerNamespace: from, bareNamespace: ns, workers: n } = input;
  const template = (await client.listAll(WORKER_REF, from)).items[0];
  if (template === undefined) throw new Error('scale-out limit: no Worker to copy');
  const name = template.metadata?.name ?? '';
  const secret = await client.get(SECRETS, from, name);
  const event = (await client.listAll(EVENTS, from)).items[0];
  const notReplayed = [...input.writes.keys()].filter((k) => !(REPLAY_ORDER as readonly string[]).includes(k) || (k.includes('events') && event === undefined));
  // A pool of its own whose status the replay patches; no controller watches this namespace.
  const poolName = input.poolName;
  await client.create(WORKERPOOL_REF, ns, {
    metadata: { name: poolName },
    spec: { poolSize: 0, token: { secretKeyRef: { name: 'none', key: 'token' } }, privateKey: { secretKeyRef: { name: 'none', key: 'privateKey' } } },
  });
  const bareName = (i: number): string => `bare-worker-${i}`;
  const workerBody = (i: number): WorkerObject => ({
    apiVersion: template.apiVersion,
    kind: template.kind,
    metadata: { name: bareName(i), labels: template.metadata?.labels },
    spec: { ...template.spec, workerId: `${template.spec.workerId.slice(0, -6)}${String(i).padStart(6, '0')}` },
  });
  const secretBody = (i: number): Secret => ({ metadata: { name: bareName(i), labels: secret.metadata?.labels }, type: secret.type, data: secret.data });
  const eventBody = (i: number, k: number): CoreEvent => {
    const e = event as CoreEvent;
    return {
      ...e,
      metadata: { name: `${bareName(i)}.${k}` },
      involvedObject: { ...e.involvedObject, namespace: ns, name: bareName(i), uid: undefined, resourceVersion: undefined },
    };
  };
  const renamed = <T extends { metadata?: { name?: string } }>(o: T, k: number): T => (k === 0 ? o : { ...o, metadata: { ...o.metadata, name: `${o.metadata?.name ?? ''}-${k}` } });
  const replays: Record<Replayable, (i: number, k: number) => Promise<unknown>> = {
    // A second create for the same worker (counters of a shared cluster) makes an object of its own.
    'POST workers': (i, k) => client.create(WORKER_REF, ns, renamed(workerBody(i), k)),
    'POST secrets': (i, k) => client.create(SECRETS, ns, renamed(secretBody(i), k)),
    'PATCH workers': (i) => client.mergePatch(WORKER_REF, ns, bareName(i), { metadata: { annotations: { 'bench/replay': String(nowMs()) } } }),
    'PUT workers': (i) => client.replace(WORKER_REF, ns, bareName(i), workerBody(i)),
    'PUT secrets': (i) => client.replace(SECRETS, ns, bareName(i), secretBody(i)),
    'PATCH secrets': (i) => client.mergePatch(SECRETS, ns, bareName(i), { data: secret.data, metadata: { annotations: { 'bench/replay': String(nowMs()) } } }),
    'PATCH workers/status': (i) => client.mergePatch(WORKER_REF, ns, bareName(i), { status: { ...template.status, lastHeartbeatTime: new Date().toISOString() } }, { subresource: 'status' }),
    'PUT workers/status': (i) => client.mergePatch(WORKER_REF, ns, bareName(i), { status: template.status }, { subresource: 'status' }),
    'POST events': (i, k) => client.create(EVENTS, ns, eventBody(i, k)),
    'PATCH events': (i, k) => client.mergePatch(EVENTS, ns, `${bareName(i)}.${k}`, { count: 2 }),
    'PATCH workerpools/status': (i, k) => client.mergePatch(WORKERPOOL_REF, ns, poolName, { status: { actualPoolSize: i + k } }, { subresource: 'status' }),
    'PUT workerpools/status': (i, k) => client.mergePatch(WORKERPOOL_REF, ns, poolName, { status: { actualPoolSize: i + k } }, { subresource: 'status' }),
  };
  const kinds = REPLAY_ORDER.filter((k) => (input.writes.get(k) ?? 0) > 0 && !notReplayed.includes(k));
  // Warm sockets, as the controller's client has them after its informers' lists.
  await Promise.all(Array.from({ length: DEFAULT_WORKER_CONCURRENCY }, () => client.get(WORKERPOOL_REF, ns, poolName)));
  const t0 = nowMs();
  await withConcurrency(n, DEFAULT_WORKER_CONCURRENCY, async (i) => {
    for (const kind of kinds) {
      const times = share(input.writes.get(kind) ?? 0, n, i);
      for (let k = 0; k < times; k++) await replays[kind](i, kind === 'PATCH events' ? 0 : k);
    }
  });
  return { seconds: (nowMs() - t0) / 1000, notReplayed };
}

async function bareSessions(input: ScaleLimitInput): Promise<{ sessionSeconds: number; registerSeconds: number }> {
  const n = input.workers;
  const created = await input.backend.admin<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: 'bench-bare-sessions' });
  if (created.status !== 201) throw new Error(`scale-out limit: create pool: HTTP ${created.status}`);
  const token = parsePoolToken(created.body.token);
  const keyType = workerKeyTypeFor(token.protocolVersion);
  const protocol = new BackendClient({ token, privateKeyPem: decodeSecretPrivateKey(created.body.privateKey) });
  // Keys and CSRs beforehand: they are the limit's key term.
  const keys: { key: PemKeyPair; csr: string }[] = [];
  for (let i = 0; i < n; i++) {
    const key = await generateWorkerKeyPair(keyType);
    keys.push({ key, csr: await createCsr(key.privateKeyPem) });
  }
  const registered: { workerId: string; certificatePem: string; caPem: string; privateKeyPem: string }[] = [];
  const r0 = nowMs();
  await withConcurrency(n, DEFAULT_WORKER_CONCURRENCY, async (i) => {
    const k = keys[i] as { key: PemKeyPair; csr: string };
    const res = await protocol.register(k.csr);
    registered[i] = { workerId: res.workerId, certificatePem: res.certificatePem, caPem: res.caPem, privateKeyPem: k.key.privateKeyPem };
  });
  const registerSeconds = (nowMs() - r0) / 1000;
  protocol.close();

  const clients: MqttClient[] = [];
  const state = encodeMessage({ type: 'state', version: MESSAGE_VERSION, state: 'idle' } satisfies StateMessage);
  const s0 = nowMs();
  try {
    await withConcurrency(n, DEFAULT_WORKER_CONCURRENCY, async (i) => {
      const w = registered[i] as (typeof registered)[number];
      const client = await mqtt.connectAsync(token.brokerUrl, {
        clientId: w.workerId,
        clean: false,
        protocolVersion: 4,
        keepalive: 60,
        reconnectPeriod: 0,
        connectTimeout: 30_000,
        ca: w.caPem,
        cert: w.certificatePem,
        key: w.privateKeyPem,
        rejectUnauthorized: true,
      });
      clients.push(client);
      await client.subscribeAsync(readonlyTopic(token.poolId, w.workerId, token.topicNamespace), { qos: 1 });
      await client.publishAsync(writeonlyTopic(token.poolId, w.workerId, token.topicNamespace), state, { qos: 1 });
    });
    return { sessionSeconds: (nowMs() - s0) / 1000, registerSeconds };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
  }
}
