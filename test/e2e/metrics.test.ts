/**
 * Metrics, health probes and logs of the controller process (issue 7), with
 * real ServiceAccount tokens against the real kube-apiserver.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Pool } from '../integration/backend-harness.js';
import { createTestNamespace, kubectl, skipWithout, testNode } from '../setup/cluster-access.js';
import { SECRETS } from '../../src/runtime/k8s-client.js';
import { startE2E, waitFor, type ControllerProcess, type E2E } from './harness.js';
import {
  createServiceAccount,
  freePort,
  HoldingProxy,
  httpGet,
  METRICS_READER_ROLE,
  serviceAccountToken,
  spawnController,
  statusOf,
} from './observability-support.js';

let e2e: E2E;
let pool: Pool;
let controller: ControllerProcess;
let metricsUrl: string;
let readyzUrl: string;
const bindings: string[] = [];
const tokens: Record<'reader' | 'stranger', string> = { reader: '', stranger: '' };
let runId = '';
/** Named in src/controller/cli/main.ts, which cannot be imported (importing it starts a controller). */
const LEASE_NAME = 'kube-workerpool-controller-leader';
/** What Node's HTTP client gets from a TLS server sent plain HTTP: the connection reset, no answer (a closed port is ECONNREFUSED). */
const PLAIN_HTTP_ON_TLS = /^(ECONNRESET|EPIPE)$/;

beforeAll(async () => {
  e2e = await startE2E('e2e-metrics');
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  metricsUrl = `https://127.0.0.1:${metricsPort}/metrics`;
  readyzUrl = `http://127.0.0.1:${healthPort}/readyz`;
  controller = e2e.startController([`--metrics-bind-address=127.0.0.1:${metricsPort}`, `--health-probe-bind-address=127.0.0.1:${healthPort}`]);
  pool = await e2e.createWorkerPool('metrics', 2);
  for (const [name, role] of [['reader', METRICS_READER_ROLE], ['stranger', undefined]] as const) {
    const binding = await createServiceAccount(e2e.namespace, `metrics-${name}`, role);
    if (binding !== undefined) bindings.push(binding);
    tokens[name] = await serviceAccountToken(e2e.client, e2e.namespace, `metrics-${name}`);
  }
  await waitFor('the pool to be ready', async () => (await e2e.pool('metrics')).status?.idleWorkers === 2, 90_000);

  // One whole run on the node, for the run metrics and the log scan.
  if (testNode() !== null) {
    // Long enough for the kubelet to report the worker running (it relists about every second): a run that
    // ends sooner is never seen running, and has no start latency to count.
    runId = await e2e.submitScriptRun(pool.id, 'echo the metrics run; sleep 3; exit 0');
    await waitFor('the run to be finished', async () => (await e2e.run(runId)).state === 'finished', 60_000);
  }
});
afterAll(async () => {
  await e2e?.close();
  for (const b of bindings) await kubectl(['delete', 'clusterrolebinding', b, '--ignore-not-found']);
});

describe('the secure metrics endpoint', () => {
  test('without a token: 401', async () => {
    expect((await httpGet(metricsUrl)).status).toBe(401);
  });

  test('with a token the API server does not know: 401', async () => {
    expect((await httpGet(metricsUrl, 'not-a-real-token')).status).toBe(401);
  });

  test('a ServiceAccount without the metrics reader role: 403', async () => {
    expect((await httpGet(metricsUrl, tokens.stranger)).status).toBe(403);
  });

  test('a ServiceAccount bound to the metrics reader role: 200 with every family', async () => {
    const res = await httpGet(metricsUrl, tokens.reader);
    expect(res.status).toBe(200);
    const text = res.body;
    // The real controller's names, per pool id.
    expect(text).toContain(`spacelift_workerpool_controller_worker_total{pool_ulid="${pool.id}"} 2`);
    expect(text).toMatch(new RegExp(`spacelift_workerpool_controller_worker_idle_total\\{pool_ulid="${pool.id}"\\} \\d`));
    expect(text).toMatch(/^spacelift_workerpool_controller_worker_creation_duration_seconds_count [1-9]/m);
    expect(text).toContain('# TYPE spacelift_workerpool_controller_worker_creation_errors_total counter');
    // The exporter's names, from the backend.
    const labels = `{worker_pool_id="${pool.id}",worker_pool_name="metrics"}`;
    expect(text).toContain(`spacelift_worker_pool_workers${labels} 2`);
    expect(text).toContain(`spacelift_worker_pool_runs_pending${labels} 0`);
    expect(text).toContain(`spacelift_worker_pool_workers_busy${labels} 0`);
    expect(text).toContain(`spacelift_worker_pool_workers_drained${labels} 0`);
    // Our own.
    expect(text).toMatch(/^workerpool_controller_reconcile_duration_seconds_count\{kind="worker"\} [1-9]/m);
    expect(text).toMatch(/^workerpool_controller_reconcile_total\{kind="workerpool",outcome="success"\} [1-9]/m);
    expect(text).toContain('workerpool_controller_mqtt_sessions 2');
    expect(text).toContain('workerpool_controller_mqtt_sessions_connected 2');
    expect(text).toContain('# TYPE workerpool_controller_mqtt_reconnects_total counter');
    expect(text).toContain('workerpool_controller_workqueue_depth{kind="worker"}');
    expect(text).toContain('workerpool_controller_messages_rejected_total 0');
    expect(text).toContain('workerpool_controller_backend_stats_errors_total 0');
    // Process metrics in the same registry.
    expect(text).toContain('process_resident_memory_bytes');
  });

  test.skipIf(skipWithout('the node', testNode() !== null))('counts the run that ran on the node: Pod created, started, finished', async () => {
    const text = (await httpGet(metricsUrl, tokens.reader)).body;
    expect(text).toMatch(/^workerpool_controller_run_pod_creation_latency_seconds_count 1$/m);
    expect(text).toMatch(/^workerpool_controller_run_pod_start_latency_seconds_count 1$/m);
    expect(text).toContain('workerpool_controller_run_outcomes_total{status="finished",reason_class="none"} 1');
  });

  test('plain HTTP is not served on the secure port', async () => {
    // The port is open and speaks TLS (an HTTPS request gets an HTTP answer)...
    expect(await statusOf(metricsUrl)).toBe(401);
    // ...and a plain HTTP request to it gets no HTTP answer at all: the TLS server drops the connection.
    const plain = await httpGet(metricsUrl.replace('https:', 'http:')).then(
      (res) => `answered ${res.status}`,
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    expect(plain).toMatch(PLAIN_HTTP_ON_TLS);
  });
});

describe('--metrics-secure=false', () => {
  test('serves plain HTTP without authentication', async () => {
    const port = await freePort();
    // Watches an empty namespace of its own, so it does not compete with the test's controller.
    const other = await createTestNamespace('e2e-metrics-plain');
    const plain = e2e.startController([`--namespaces=${other}`, `--metrics-bind-address=127.0.0.1:${port}`, '--metrics-secure=false']);
    const url = `http://127.0.0.1:${port}/metrics`;
    const res = await waitFor('the plain metrics endpoint', async () => {
      if (!plain.running) throw new Error(`controller exited: ${plain.lines.slice(-10).join('\n')}`);
      const r = await httpGet(url).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, 120_000);
    expect(res.body).toContain('workerpool_controller_reconcile_errors_total');
    expect(await statusOf(url.replace('http:', 'https:'))).toBe(0);
    await plain.kill();
  }, 240_000);
});

describe('health probes', () => {
  test('the running controller is ready and healthy', async () => {
    expect(await statusOf(readyzUrl)).toBe(200);
    expect(await statusOf(readyzUrl.replace('/readyz', '/healthz'))).toBe(200);
    expect(await statusOf(readyzUrl.replace('/readyz', '/metrics'))).toBe(404);
  });

  test('/readyz is 503 until the caches are synced, then 200; /healthz is 200 throughout', async () => {
    const proxy = await HoldingProxy.start();
    const port = await freePort();
    const other = await createTestNamespace('e2e-readyz');
    const c = spawnController(['--metrics-bind-address=0', `--health-probe-bind-address=127.0.0.1:${port}`, `--namespaces=${other}`], proxy.kubeconfigPath);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor('the health server', async () => (await statusOf(`${base}/healthz`)) === 200, 120_000);
      // The controller is up and has asked the API server for its lists, which the proxy holds.
      await waitFor('the controller to reach the API server', () => proxy.waiting > 0, 60_000);
      const notReady = await httpGet(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(notReady.body).toContain('caches not synced');
      proxy.release();
      await waitFor('/readyz to be 200', async () => (await statusOf(`${base}/readyz`)) === 200, 120_000);
      expect(await statusOf(`${base}/healthz`)).toBe(200);
    } finally {
      await c.kill();
      await proxy.close();
    }
  }, 300_000);

  test('a standby (leader election, not the leader) is ready; so is the leader once synced', async () => {
    const other = await createTestNamespace('e2e-standby');
    const [p1, p2] = [await freePort(), await freePort()];
    const args = (port: number): string[] => ['--leader-elect', `--leader-election-namespace=${other}`, `--namespaces=${other}`, `--health-probe-bind-address=127.0.0.1:${port}`];
    const leader = e2e.startController(args(p1));
    await leader.waitForLog('the first controller to lead', (r) => r.msg === 'became leader', 120_000);
    await waitFor('the leader to be ready', async () => (await statusOf(`http://127.0.0.1:${p1}/readyz`)) === 200, 120_000);
    const standby = e2e.startController(args(p2));
    await standby.waitForLog('the second controller to see the leader', (r) => r.msg === 'leader observed' || r.msg === 'became leader', 120_000);
    expect(standby.records().some((r) => r.msg === 'became leader')).toBe(false);
    expect(await statusOf(`http://127.0.0.1:${p2}/readyz`)).toBe(200);
    expect(await statusOf(`http://127.0.0.1:${p2}/healthz`)).toBe(200);
    const lease = await e2e.client.rest.request<{ spec?: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${other}/leases/${LEASE_NAME}`);
    const leaderIdentity = leader.records().find((r) => r.msg === 'starting')?.identity;
    expect(leaderIdentity).toMatch(/\S/);
    expect(lease.spec?.holderIdentity).toBe(leaderIdentity);
    await standby.kill();
    await leader.kill();
  }, 300_000);
});

describe('logs', () => {
  test('are JSON lines with level and the object, and a whole run leaves no key material in them', async () => {
    const records = controller.records();
    expect(records.length).toBeGreaterThan(10);
    expect(records.every((r) => typeof r.level === 'string' && typeof r.msg === 'string' && typeof r.ts === 'string')).toBe(true);
    if (runId !== '') expect(records.some((r) => r.msg === 'run status reported' && r.namespace === e2e.namespace && typeof r.name === 'string' && r.runId === runId)).toBe(true);

    const all = controller.lines.join('\n');
    expect(all).not.toContain('-----BEGIN');
    expect(all).not.toContain('LS0tLS1CRUdJTi');
    expect(all).not.toContain(pool.tokenText);
    expect(all).not.toContain(pool.privateKeyB64);
    // Any line of the pool's private key body.
    for (const line of pool.privateKeyPem.split('\n').filter((l) => l.length >= 40)) expect(all).not.toContain(line);
    // Every Secret of the namespace (the pool's and each worker's key and certificate), raw and decoded.
    const secrets = (await e2e.client.list(SECRETS, e2e.namespace)).items;
    expect(secrets.length).toBeGreaterThan(2);
    for (const s of secrets) {
      for (const value of Object.values(s.data ?? {})) {
        if (value.length < 24) continue;
        expect(all).not.toContain(value);
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        for (const line of decoded.split('\n').filter((l) => l.length >= 40)) expect(all).not.toContain(line);
      }
    }
    // Nor the bearer tokens that scraped the metrics.
    expect(all).not.toContain(tokens.reader);
    expect(all).not.toContain(tokens.stranger);
  });

  test('--log-format=text prints readable lines', async () => {
    const other = await createTestNamespace('e2e-logtext');
    const c = e2e.startController([`--namespaces=${other}`, '--log-format=text']);
    await waitFor('the text log line of the cache sync', () => c.lines.some((l) => / INFO  caches synced /.test(l)), 120_000);
    expect(c.lines.some((l) => l.startsWith('{'))).toBe(false);
    await c.kill();
  }, 240_000);
});
