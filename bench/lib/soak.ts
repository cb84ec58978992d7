/**
 * The soak: an operator's bad day, counted. Two leader-elected controllers, a
 * reference backend and a pool on a real node; runs submitted at a steady
 * rate while faults strike on a schedule (the leader SIGKILLed and SIGTERMed,
 * the backend restarted, kube-apiserver killed and restarted, the pool's size
 * flapping, an idle Worker and a running run Pod deleted by hand); then every
 * run accounted for:
 *
 * - finished;
 * - failed by the test: the script exits 1 on purpose, or the test deleted
 *   its Pod (the reason says so);
 * - failed by the system: any other failure or stop (the number that must be 0);
 * - lost: not over once no run has ended for 90 s after the load stopped;
 * - duplicated: more than one Pod (distinct uid) ever existed for the run,
 *   from a watch over the whole soak, not a final list;
 * - phantoms: a Worker busy with a run that is over or has no Pod, or a
 *   worker the backend thinks busy with no run, once the dust has settled;
 * - orphans: run Pods left without their Worker, or not released after their
 *   run ended.
 *
 * Run Pods really run (the stand-in runner image runs the script the run's
 * environment carries), so everything between a schedule and its end is the
 * real thing: the kubelet, the scheduler, sidecars, grace periods.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import https from 'node:https';
import { LABEL_RUN_ID, LABEL_WORKERPOOL } from '../../src/api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject } from '../../src/api/types.js';
import { startBackend, type RunningBackend } from '../../src/backend/server.js';
import { Informer } from '../../src/runtime/informer.js';
import { PODS, SECRETS, type Pod } from '../../src/runtime/k8s-client.js';
import { kubeListWatch } from '../../src/runtime/list-watch.js';
import { request } from '../../test/integration/backend-harness.js';
import { createNamespace, install, startBenchCluster, type BenchCluster } from './cluster.js';
import { ControllerProcess } from './controller.js';

export interface SoakOptions {
  /** How long runs are submitted, ms. */
  readonly durationMs: number;
  /** Runs submitted per second. */
  readonly ratePerSecond: number;
  /** Workers of the pool (the size the flapping returns to). */
  readonly poolSize: number;
  /** Share of runs whose script exits 1 on purpose (failed by the test). */
  readonly failingShare: number;
  /** Where the controllers' and the backend's logs go; a temporary directory by default. */
  readonly logDir?: string;
  /** An existing cluster with a node and the stand-in images, instead of one of its own (no API server restart then). */
  readonly cluster?: BenchCluster;
  readonly log: (line: string) => void;
}

export interface SoakFault {
  /** Seconds after the first run was submitted. */
  readonly at: number;
  readonly what: string;
}

export interface SoakReport {
  readonly options: { durationSeconds: number; ratePerSecond: number; poolSize: number; failingShare: number };
  readonly submitted: number;
  readonly finished: number;
  readonly failedByTest: number;
  readonly failedBySystem: readonly { runId: string; state: string; reason: string | null }[];
  readonly lost: readonly { runId: string; state: string }[];
  readonly duplicated: readonly { runId: string; pods: number }[];
  readonly phantoms: readonly string[];
  readonly orphans: readonly string[];
  readonly faults: readonly SoakFault[];
  /** Seconds from the last submission until every run was over (or the wait gave up). */
  readonly drainSeconds: number;
  readonly logDir: string;
}

interface RunView {
  id: string;
  poolId: string;
  state: string;
  reason: string | null;
  exitCode: number | null;
}

/** The script of a run: a few seconds of work, then success, or exit 1 on purpose. */
function script(fails: boolean, seconds: number): string {
  return `echo soak run; sleep ${seconds}; ${fails ? 'echo failing on purpose; exit 1' : 'echo done'}`;
}

const TERMINAL = new Set(['finished', 'failed', 'stopped']);
/** No run ended for this long after the load stopped: the runs left are stuck (longer than any run's script plus a Pod's start and a retry). */
const STALL_MS = 90_000;

class Backend {
  private running: RunningBackend | undefined;
  private agent: https.Agent | undefined;
  ports: { api: number; broker: number } = { api: 0, broker: 0 };

  constructor(
    private readonly dataDir: string,
    private readonly logFile: string,
  ) {}

  get apiUrl(): string {
    return this.current.apiUrl;
  }

  private get current(): RunningBackend {
    if (this.running === undefined) throw new Error('the backend is not running');
    return this.running;
  }

  async start(): Promise<void> {
    const lines: string[] = [];
    this.running = await startBackend({
      dataDir: this.dataDir,
      port: this.ports.api,
      brokerPort: this.ports.broker,
      logLevel: 'info',
      logSink: (line) => {
        lines.push(line);
        if (lines.length >= 200) writeFileSync(this.logFile, `${lines.splice(0).join('\n')}\n`, { flag: 'a' });
      },
    });
    // Restarted on the same ports: the pool token names them.
    this.ports = { api: Number(new URL(this.running.apiUrl).port), broker: Number(new URL(this.running.brokerUrl).port) };
    this.agent = new https.Agent({ ca: this.running.caPem, keepAlive: true, maxSockets: 8 });
  }

  async stop(): Promise<void> {
    this.agent?.destroy();
    await this.running?.stop();
    this.running = undefined;
  }

  async admin<T>(method: string, path: string, body?: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const b = this.current;
        const res = await request<T>({ apiUrl: b.apiUrl, caPem: b.caPem, agent: this.agent }, method, path, body, b.adminToken);
        if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
        return res.body;
      } catch (err) {
        // The backend is being restarted: the soak's own calls wait for it, as a user's would.
        if (attempt >= 60) throw err;
        await sleep(500);
      }
    }
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log;
  const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), 'kwc-soak-'));
  const cluster = options.cluster ?? (await startBenchCluster({ pods: options.poolSize * 2 + 4, log }));
  const ownCluster = options.cluster === undefined;
  const images = cluster.runImages;
  if (images === undefined) throw new Error('the soak needs a cluster whose node runs the run Pods');
  const backend = new Backend(join(logDir, 'backend-data'), join(logDir, 'backend.log'));
  const controllers: ControllerProcess[] = [];
  let podInformer: Informer<Pod> | undefined;
  try {
    await install(cluster);
    const namespace = await createNamespace(cluster, 'soak');
    await backend.start();
    const pool = await backend.admin<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: 'soak' });
    await cluster.client.create(SECRETS, namespace, { metadata: { name: 'soak-credentials' }, stringData: { token: pool.token, privateKey: pool.privateKey } });
    await cluster.client.create(WORKERPOOL_REF, namespace, {
      metadata: { name: 'soak' },
      spec: {
        poolSize: options.poolSize,
        token: { secretKeyRef: { name: 'soak-credentials', key: 'token' } },
        privateKey: { secretKeyRef: { name: 'soak-credentials', key: 'privateKey' } },
        // Failed Pods kept for inspection would pile up; the counts come from the backend and the watch.
        failedPodsHistoryLimit: 0,
        pod: { terminationGracePeriodSeconds: 5 },
      },
    });

    // Every run Pod that ever exists, by run id: duplicates are distinct uids.
    const podUidsByRun = new Map<string, Set<string>>();
    podInformer = new Informer<Pod>(kubeListWatch(cluster.client, PODS, { labelSelector: `${LABEL_WORKERPOOL}=${pool.id}` }), { name: 'soak-pods', namespaces: [namespace] });
    const seePod = (p: Pod): void => {
      const run = p.metadata?.labels?.[LABEL_RUN_ID];
      if (run === undefined) return;
      const uids = podUidsByRun.get(run) ?? new Set<string>();
      uids.add(p.metadata?.uid ?? '');
      podUidsByRun.set(run, uids);
    };
    podInformer.addEventHandler({ onAdd: seePod, onUpdate: (_o, p) => seePod(p) });
    podInformer.start();
    await podInformer.waitForSync();

    let generation = 0;
    const startController = (): ControllerProcess => {
      const c = new ControllerProcess({
        kubeconfigPath: cluster.kubeconfigPath,
        namespace,
        leaderElect: true,
        logFile: join(logDir, `controller-${++generation}.log`),
        // A Deployment's replacement after a kill comes up as a standby; short leases keep the soak's failovers short.
        extraArgs: ['--leader-elect-lease-duration=8s', '--leader-elect-renew-deadline=6s', '--leader-elect-retry-period=1s', '--stuck-pod-grace=2m'],
      });
      controllers.push(c);
      return c;
    };
    startController();
    startController();
    const leader = async (): Promise<ControllerProcess> => {
      for (;;) {
        const found = controllers.find((c) => c.running && c.records().some((r) => r.msg === 'became leader'));
        if (found !== undefined) return found;
        await sleep(200);
      }
    };
    await (await leader()).waitForLog('caches synced');
    log(`pool ${pool.id}: ${options.poolSize} workers, controllers ${controllers.map((c) => c.pid).join(' and ')}`);
    const started = Date.now();
    await waitFor(async () => (await cluster.client.get(WORKERPOOL_REF, namespace, 'soak')).status?.actualPoolSize === options.poolSize, 180_000, 'the pool registered');
    log(`workers registered in ${Math.round((Date.now() - started) / 1000)} s`);

    // Load: the runs, and which of them fail on purpose.
    const submitted = new Map<string, { fails: boolean }>();
    const faults: SoakFault[] = [];
    const t0 = Date.now();
    const at = (): number => Math.round((Date.now() - t0) / 100) / 10;
    const expectedFailures = new Set<string>();
    let stopLoad = false;
    const load = (async () => {
      let n = 0;
      while (!stopLoad) {
        const due = t0 + (n * 1000) / options.ratePerSecond;
        if (Date.now() < due) await sleep(due - Date.now());
        const fails = Math.random() < options.failingShare;
        const run = await backend.admin<{ id: string }>('POST', '/api/runs', {
          poolId: pool.id,
          ...images,
          env: { KWC_STANDIN_SCRIPT: script(fails, 1 + Math.floor(Math.random() * 4)) },
        });
        submitted.set(run.id, { fails });
        n++;
      }
    })();

    // Faults, spread over the soak: the same list, stretched to its length.
    const fault = async (what: string, action: () => Promise<void>): Promise<void> => {
      faults.push({ at: at(), what });
      log(`t=${at()} s: ${what}`);
      await action();
    };
    const scale = async (size: number): Promise<void> => {
      await cluster.client.mergePatch(WORKERPOOL_REF, namespace, 'soak', { spec: { poolSize: size } });
    };
    /** Stops the leader with `signal`; a replacement starts, as a Deployment's would. */
    const hitLeader = async (signal: NodeJS.Signals): Promise<void> => {
      await (await leader()).kill(signal);
      startController();
    };
    const restartBackend = async (): Promise<void> => {
      await backend.stop();
      await backend.start();
    };
    const plan: { share: number; what: string; action: () => Promise<void> }[] = [
      { share: 0.1, what: 'SIGKILL the leader (a replacement starts, as a Deployment would)', action: () => hitLeader('SIGKILL') },
      { share: 0.2, what: 'restart the backend', action: restartBackend },
      { share: 0.28, what: 'scale the pool down to 2', action: () => scale(Math.min(2, options.poolSize)) },
      { share: 0.34, what: `scale the pool up to ${options.poolSize}`, action: () => scale(options.poolSize) },
      { share: 0.4, what: 'SIGKILL the leader', action: () => hitLeader('SIGKILL') },
      {
        share: 0.46,
        what: 'delete a running run Pod by hand',
        action: async () => {
          const running = podInformer?.list((p) => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined) ?? [];
          const pod = running[0];
          if (pod === undefined) return;
          expectedFailures.add(pod.metadata?.labels?.[LABEL_RUN_ID] ?? '');
          await cluster.client.delete(PODS, namespace, pod.metadata?.name ?? '');
        },
      },
      {
        share: 0.52,
        what: 'restart kube-apiserver',
        action: async () => {
          if (cluster.restartApiServer !== undefined) await cluster.restartApiServer();
        },
      },
      { share: 0.58, what: 'scale the pool to 0', action: () => scale(0) },
      { share: 0.62, what: `scale the pool to ${options.poolSize + 4}`, action: () => scale(options.poolSize + 4) },
      { share: 0.68, what: 'SIGTERM the leader (a replacement starts)', action: () => hitLeader('SIGTERM') },
      {
        share: 0.74,
        what: 'delete an idle Worker by hand',
        action: async () => {
          const workers = (await cluster.client.list(WORKER_REF, namespace)).items;
          const idle = workers.find((w) => w.status?.state === 'Idle');
          if (idle !== undefined) await cluster.client.delete(WORKER_REF, namespace, idle.metadata.name ?? '');
        },
      },
      { share: 0.8, what: 'restart the backend', action: restartBackend },
      { share: 0.86, what: `scale the pool back to ${options.poolSize}`, action: () => scale(options.poolSize) },
      { share: 0.92, what: 'SIGKILL the leader', action: () => hitLeader('SIGKILL') },
    ];
    for (const step of plan) {
      const due = t0 + step.share * options.durationMs;
      if (Date.now() < due) await sleep(due - Date.now());
      await fault(step.what, step.action);
    }
    const end = t0 + options.durationMs;
    if (Date.now() < end) await sleep(end - Date.now());
    stopLoad = true;
    await load;
    const loadEnded = Date.now();
    log(`t=${at()} s: load stopped after ${submitted.size} runs; waiting for every run to end`);

    // Every run over, or give up once none has ended for a while: what is left
    // then is stuck, and counted as lost. A backlog the machine works through
    // slowly (runs submitted faster than the pool finishes them) is not lost.
    let runs: RunView[] = [];
    let over = -1;
    let lastProgress = Date.now();
    for (;;) {
      runs = (await backend.admin<RunView[]>('GET', `/api/runs?poolId=${pool.id}`)).filter((r) => submitted.has(r.id));
      const nowOver = runs.filter((r) => TERMINAL.has(r.state)).length;
      if (nowOver !== over) lastProgress = Date.now();
      over = nowOver;
      if (runs.every((r) => TERMINAL.has(r.state)) || Date.now() - lastProgress > STALL_MS) break;
      await sleep(2000);
    }
    const drainSeconds = Math.round((Date.now() - loadEnded) / 1000);
    // Let releases and clean-ups of the last runs land before looking for phantoms and orphans.
    await sleep(15_000);

    const failedByTest = (r: RunView): boolean =>
      (r.state === 'failed' && submitted.get(r.id)?.fails === true && r.exitCode === 1) ||
      (expectedFailures.has(r.id) && r.state === 'failed' && /deleted before the run ended/.test(r.reason ?? ''));
    const phantoms: string[] = [];
    const orphans: string[] = [];
    const workers = (await cluster.client.list(WORKER_REF, namespace)).items;
    const pods = (await cluster.client.list(PODS, namespace, { labelSelector: `${LABEL_WORKERPOOL}=${pool.id}` })).items;
    const runState = new Map(runs.map((r) => [r.id, r.state]));
    for (const w of workers) {
      const run = w.status?.currentRunID;
      if (w.status?.state === 'Busy' && (run === undefined || TERMINAL.has(runState.get(run) ?? '') || !pods.some((p) => p.metadata?.labels?.[LABEL_RUN_ID] === run))) {
        phantoms.push(`Worker ${w.metadata.name} is Busy with ${run ?? 'no run'}, which is over or has no Pod`);
      }
    }
    const backendPool = await backend.admin<{ workers: { id: string; state: string }[] }>('GET', `/api/pools/${pool.id}`);
    for (const bw of backendPool.workers) {
      if (bw.state === 'busy' && !runs.some((r) => !TERMINAL.has(r.state))) phantoms.push(`the backend has worker ${bw.id} busy with no run in progress`);
    }
    const workerNames = new Set(workers.map((w: WorkerObject) => w.metadata.name));
    for (const p of pods) {
      const owner = p.metadata?.ownerReferences?.find((o) => o.kind === 'Worker')?.name;
      if (owner === undefined || !workerNames.has(owner)) orphans.push(`Pod ${p.metadata?.name} has no Worker (${owner ?? 'no owner'})`);
      else if (TERMINAL.has(runState.get(p.metadata?.labels?.[LABEL_RUN_ID] ?? '') ?? '') && (p.metadata?.finalizers ?? []).length > 0) {
        orphans.push(`Pod ${p.metadata?.name} still held by a finalizer after its run ended`);
      }
    }

    const report: SoakReport = {
      options: { durationSeconds: options.durationMs / 1000, ratePerSecond: options.ratePerSecond, poolSize: options.poolSize, failingShare: options.failingShare },
      submitted: submitted.size,
      finished: runs.filter((r) => r.state === 'finished').length,
      failedByTest: runs.filter(failedByTest).length,
      failedBySystem: runs.filter((r) => (r.state === 'failed' || r.state === 'stopped') && !failedByTest(r)).map((r) => ({ runId: r.id, state: r.state, reason: r.reason })),
      lost: [...submitted.keys()].filter((id) => !TERMINAL.has(runState.get(id) ?? '')).map((id) => ({ runId: id, state: runState.get(id) ?? 'unknown' })),
      duplicated: [...podUidsByRun].filter(([, uids]) => uids.size > 1).map(([runId, uids]) => ({ runId, pods: uids.size })),
      phantoms,
      orphans,
      faults,
      drainSeconds,
      logDir,
    };
    writeFileSync(join(logDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    await podInformer?.stop();
    for (const c of controllers) await c.kill('SIGKILL').catch(() => undefined);
    await backend.stop().catch(() => undefined);
    if (ownCluster) await cluster.stop();
  }
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // the API server restarting, say
    }
    if (Date.now() > deadline) throw new Error(`soak: timed out waiting for ${what}`);
    await sleep(500);
  }
}

/** One line per count, and the details of anything that must be zero. */
export function formatReport(r: SoakReport): string {
  const lines = [
    `submitted ${r.submitted}, finished ${r.finished}, failed by the test ${r.failedByTest}, failed by the system ${r.failedBySystem.length}, lost ${r.lost.length}, duplicated ${r.duplicated.length}, phantoms ${r.phantoms.length}, orphans ${r.orphans.length}`,
    `faults: ${r.faults.map((f) => `${f.at} s ${f.what}`).join('; ')}`,
    `${r.lost.length === 0 ? 'every run over' : 'gave up waiting'} ${r.drainSeconds} s after the load stopped; logs and report.json in ${r.logDir}`,
  ];
  for (const f of r.failedBySystem) lines.push(`  failed by the system: ${f.runId} ${f.state}: ${f.reason ?? ''}`);
  for (const l of r.lost) lines.push(`  lost: ${l.runId} (${l.state})`);
  for (const d of r.duplicated) lines.push(`  duplicated: ${d.runId} had ${d.pods} Pods`);
  for (const p of r.phantoms) lines.push(`  phantom: ${p}`);
  for (const o of r.orphans) lines.push(`  orphan: ${o}`);
  return lines.join('\n');
}
