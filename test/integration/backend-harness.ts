/**
 * Test harness for the reference backend: a backend in-process on free
 * loopback ports, optionally behind a real mosquitto child process, plus
 * helpers to call the admin API and to bring up workers with the real
 * protocol client. No mocks: every connection is real TLS.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/backend/broker.js';
import { mosquittoMissing, startMosquitto, type MosquittoProcess } from '../../src/backend/mosquitto-process.js';
import { startBackend, type BackendOptions, type RunningBackend } from '../../src/backend/server.js';
import {
  BackendClient,
  createCsr,
  decodeSecretPrivateKey,
  generateWorkerKeyPair,
  parsePoolToken,
  WorkerConnection,
  workerKeyTypeFor,
  type PoolToken,
  type ToWorkerMessage,
  type WorkerCredentials,
} from '../../src/protocol/index.js';

export type BrokerKind = 'embedded' | 'mosquitto';

/** Polls `check` until it returns a value other than undefined/false; fails naming `what`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fails with a clear message when mosquitto is missing, instead of skipping. */
export function requireMosquitto(): void {
  const missing = mosquittoMissing();
  if (missing !== undefined) throw new Error(`${missing} (needed by the external-broker tests)`);
}

export interface Env {
  kind: BrokerKind;
  dir: string;
  dataDir: string;
  backend: RunningBackend;
  /** Every log line the backend wrote, across restarts. */
  logLines: string[];
  /** What mosquitto wrote (its connection log), for `kind === 'mosquitto'`. */
  brokerOutput: string[];
  options: BackendOptions;
  restartBackend(): Promise<void>;
  stopBackend(): Promise<void>;
  startBackendAgain(): Promise<void>;
  admin<T = unknown>(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** Starts a backend (and mosquitto for `kind === 'mosquitto'`) in a fresh temp dir. */
export async function startEnv(kind: BrokerKind, extra: Partial<BackendOptions> = {}): Promise<Env> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `wpc-backend-${kind}-`));
  const dataDir = path.join(dir, 'data');
  const logLines: string[] = [];
  let mosquitto: MosquittoProcess | undefined;
  const options: BackendOptions = {
    dataDir,
    port: await freePort(),
    logSink: (line) => logLines.push(line),
    logLevel: 'debug',
    ...extra,
  };
  if (kind === 'mosquitto') {
    requireMosquitto();
    mosquitto = await startMosquitto({ dataDir, dir: path.join(dir, 'mosquitto') });
    options.externalBroker = mosquitto.brokerUrl;
    // The backend keeps mosquitto's crlfile current and makes it reload, as docs/mosquitto.md says.
    options.crlFile = mosquitto.crlFile;
    options.onCrlWritten = mosquitto.reload;
  } else {
    options.brokerPort = await freePort();
  }
  let backend = await startBackend(options);
  let running = true;
  const env: Env = {
    kind,
    dir,
    dataDir,
    get backend() {
      return backend;
    },
    logLines,
    brokerOutput: mosquitto?.output ?? [],
    options,
    async stopBackend() {
      if (running) await backend.stop();
      running = false;
    },
    async startBackendAgain() {
      backend = await startBackend(options);
      running = true;
    },
    async restartBackend() {
      await env.stopBackend();
      await env.startBackendAgain();
    },
    admin: (method, urlPath, body) => request(backend, method, urlPath, body, backend.adminToken),
    async close() {
      await env.stopBackend();
      await mosquitto?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** An HTTPS call to the backend API, trusting only its CA. */
export function request<T>(
  /** With `agent`, connections are kept alive across calls (the bench's many runs). */
  backend: Pick<RunningBackend, 'apiUrl' | 'caPem'> & { agent?: https.Agent },
  method: string,
  urlPath: string,
  body?: unknown,
  bearer?: string,
  headers: Record<string, string> = {},
  rawBody?: Buffer,
): Promise<{ status: number; body: T }> {
  const data = rawBody ?? (body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(urlPath, backend.apiUrl),
      {
        method,
        ca: backend.caPem,
        agent: backend.agent,
        headers: {
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : {}) as T });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

export interface Pool {
  id: string;
  /** The Secret values, as returned by POST /api/pools. */
  tokenText: string;
  privateKeyB64: string;
  token: PoolToken;
  privateKeyPem: string;
  client: BackendClient;
}

export async function createPool(env: Env, name = 'test'): Promise<Pool> {
  const res = await env.admin<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name });
  if (res.status !== 201) throw new Error(`create pool: ${res.status} ${JSON.stringify(res.body)}`);
  const token = parsePoolToken(res.body.token);
  const privateKeyPem = decodeSecretPrivateKey(res.body.privateKey);
  return { id: res.body.id, tokenText: res.body.token, privateKeyB64: res.body.privateKey, token, privateKeyPem, client: new BackendClient({ token, privateKeyPem }) };
}

/** A worker registered as the controller would: its key of the type the pool token's protocol version says. */
export async function registerWorker(pool: Pool): Promise<WorkerCredentials> {
  const keys = await generateWorkerKeyPair(workerKeyTypeFor(pool.token.protocolVersion));
  const res = await pool.client.register(await createCsr(keys.privateKeyPem));
  return { poolId: pool.id, workerId: res.workerId, certificatePem: res.certificatePem, privateKeyPem: keys.privateKeyPem, caPem: res.caPem };
}

/** A connected worker that records what it receives and answers `accepted` to schedules. */
export interface TestWorker {
  creds: WorkerCredentials;
  conn: WorkerConnection;
  received: ToWorkerMessage[];
  autoAccept: boolean;
}

export async function connectWorker(pool: Pool, creds: WorkerCredentials, opts: { autoAccept?: boolean } = {}): Promise<TestWorker> {
  const worker: TestWorker = { creds, conn: undefined as unknown as WorkerConnection, received: [], autoAccept: opts.autoAccept ?? true };
  worker.conn = new WorkerConnection({
    brokerUrl: pool.token.brokerUrl,
    credentials: creds,
    reconnectMinMs: 100,
    reconnectMaxMs: 1000,
    onMessage: async (msg) => {
      worker.received.push(msg);
      // Idempotent by runId, as the protocol requires of workers.
      if (msg.type === 'schedule' && worker.autoAccept) await worker.conn.sendRunStatus({ runId: msg.runId, status: 'accepted' });
    },
  });
  const connected = new Promise<void>((resolve) => worker.conn.once('connect', () => resolve()));
  worker.conn.start();
  await connected;
  return worker;
}

export async function runState(env: Env, runId: string): Promise<{ id: string; state: string; workerId: string | null; reason: string | null }> {
  const res = await env.admin<{ id: string; state: string; workerId: string | null; reason: string | null }>('GET', `/api/runs/${runId}`);
  if (res.status !== 200) throw new Error(`get run: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function workerView(env: Env, poolId: string, workerId: string): Promise<{ id: string; state: string; drained: boolean } | undefined> {
  const res = await env.admin<{ workers: Array<{ id: string; state: string; drained: boolean }> }>('GET', `/api/pools/${poolId}`);
  return res.body.workers.find((w) => w.id === workerId);
}
