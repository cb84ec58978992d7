/**
 * The benchmarks of issue 9, each against a limit measured in the same run:
 *
 * 1. scale-out  poolSize 0 -> N until status.actualPoolSize == N; limit:
 *               N keys of the pool's type / cores + the controller's API
 *               writes by a bare client + N bare broker sessions (scale-limit.ts)
 * 2. dispatch   backend publishes `schedule` -> run Pod seen by a watch;
 *               limit: the same Pods created bare with a KubeClient
 * 3. idle       kube-apiserver's request counters over a quiet window,
 *               minus the apiserver's own background; controller RSS
 * 4. recovery   SIGKILL with busy workers -> a new process has re-adopted all
 * 5. coldstart  an autoscaled pool at 0 workers: POST /api/runs -> run Pod
 *               Running; limit: a bare copy of the run Pod, create -> Running
 *
 * `runBench` is what `npm run bench` (bench/run.ts) and the smoke test call.
 */
// The played kubelet: only where the run Pods cannot run (N = 1000 on 2 cores; see lib/cluster.ts).
import { runningPodStatus } from '../src/cluster/kubelet-play.js';
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { LABEL_RUN_ID, LABEL_WORKERPOOL } from '../src/api/constants.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject } from '../src/api/types.js';
import { KubeClient, PODS, SECRETS, resourcePath, resource, type Pod } from '../src/runtime/k8s-client.js';
import { generateWorkerKeyPair, workerKeyTypeFor, type WorkerKeyType } from '../src/protocol/keys.js';
import { parsePoolToken } from '../src/protocol/token.js';
import type { ProtocolVersion } from '../src/protocol/version.js';
import { freePort } from '../src/backend/broker.js';
import { diffCounts, perMinute, scrapeCodeCount, scrapeRequestCounts, type RequestCounts } from './lib/apiserver-metrics.js';
import { startBenchBackend, type BenchBackend, type BenchBroker } from './lib/backend.js';
import { createNamespace, install, kubectlRun, startBenchCluster, type BenchCluster, type RunImages } from './lib/cluster.js';
import { buildController, COMPILED_MAIN } from './lib/build.js';
import { ControllerProcess } from './lib/controller.js';
import { withConcurrency } from './lib/concurrency.js';
import { CpuMeter, cpuSecondsOf, memoryOf } from './lib/proc.js';
import { nowMs, WatchThread, type WatchEvent } from './lib/watch.js';
import { controllerWrites, measureScaleLimit, type ScaleLimit } from './scale-limit.js';

export type Phase = 'scale' | 'idle' | 'lifecycle' | 'coldstart' | 'latency' | 'dispatch' | 'failover' | 'recovery';
export const ALL_PHASES: readonly Phase[] = ['scale', 'idle', 'lifecycle', 'coldstart', 'latency', 'dispatch', 'failover', 'recovery'];

export interface BenchOptions {
  /** N: workers in the pool. */
  workers: number;
  /** Runs dispatched at once (and busy workers at the kill); default N. */
  runs?: number;
  /** The quiet window of the idle measure, seconds. */
  idleSeconds: number;
  /** The apiserver's own background, measured before the controller starts, seconds. */
  baselineSeconds: number;
  /** Runs of the cold-start measure (default 20). */
  coldStartRuns?: number;
  /** Key pairs generated one after another for the scale-out limit. */
  keys: number;
  /** The protocol version the bench's backend speaks (1: RSA workers, 2: ECDSA); default the backend's own. */
  protocolVersion?: ProtocolVersion;
  /** The workers' broker: the backend's embedded one (default) or mosquitto. */
  broker?: BenchBroker;
  /** Runs of the queue-to-run latency measure (default 50). */
  latencyRuns?: number;
  /** Which measures to take; scale-out always runs (the others need its workers). */
  phases: ReadonlySet<Phase>;
  /** Use this cluster instead of starting one. */
  kubeconfigPath?: string;
  kubectl?: string;
  /** With kubeconfigPath: the stand-in images of its node, so that the runs really run there. */
  runImages?: RunImages;
  /** Write the controllers' V8 CPU profiles here (each process on SIGTERM; a SIGKILLed one writes none). */
  cpuProfDir?: string;
  /** The replacement process of the recovery measure campaigns for the Lease too (adds the lease wait). */
  recoveryLeaderElect?: boolean;
  /** Run the controller compiled (plain node, as an image would) instead of through tsx. */
  compiled?: boolean;
  /** Reuse the compiled controller in .tmp/bench-build as it is (e.g. with an experiment applied to it). */
  noBuild?: boolean;
  /** Serve the controller's metrics (plain HTTP on loopback) and count its reconciles per phase. */
  controllerMetrics?: boolean;
  /** Write a V8 heap snapshot of the controller here at the end of the idle window (read it with bench/heap-summary.ts). */
  heapSnapshotDir?: string;
  log: (line: string) => void;
}

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ScaleResult {
  workers: number;
  seconds: number;
  workersPerSecond: number;
  /** The worker key type the pool's token asks for (protocol version 1: rsa, 2: ecdsa-p256). */
  keyType: WorkerKeyType;
  keyMedianMs: number;
  keySamplesMs: number[];
  cores: number;
  limitSeconds: number;
  /** What the limit is made of. */
  limit: ScaleLimit;
  ratio: number;
  /** Seconds until the backend had all N workers online (before the status says so). */
  backendOnlineSeconds?: number;
  /** CPU seconds per process during the scale-out. */
  cpu: Record<string, number>;
  /** Reconciles by kind during the scale-out (with controllerMetrics). */
  reconciles?: Record<string, number>;
  /**
   * Where each worker's time went, seconds (p50 / max over workers), from
   * watch events: Worker created -> its key Secret created (key generated) ->
   * certificate stored (registered) -> session online at the backend ->
   * Worker status connected.
   */
  stages: Record<string, { p50: number; max: number }>;
}

export interface IdleResult {
  workers: number;
  seconds: number;
  /** "VERB resource" -> requests per minute, apiserver background removed; leases apart. */
  perMinute: Record<string, number>;
  leasePerMinute: Record<string, number>;
  /** The apiserver's own requests per minute with no controller (subtracted above). */
  backgroundPerMinute: Record<string, number>;
  listPerMinute: number;
  getPerMinute: number;
  /** MQTT messages per minute the backend received from the controller's sessions (heartbeats). */
  mqttPerMinute: number;
  controllerCpuPercent: number;
  rssBaseMiB: number;
  rssMiB: number;
  peakMiB: number;
  mibPerWorker: number;
  /** Path of the controller's heap snapshot taken after the RSS reading (with heapSnapshotDir). */
  heapSnapshot?: string;
}

export interface DispatchResult {
  runs: number;
  /** Backend publish -> Pod seen in a watch, ms. */
  dispatch: Percentiles;
  /** Run submitted -> Pod seen, ms (context: includes the backend's own scheduling). */
  submitToPod: Percentiles;
  /** Bare create call -> Pod seen, ms. */
  bare: Percentiles;
  p50Ratio: number;
  resentSchedules: number;
  /** kube-apiserver requests from the submission to the last Pod seen, by verb and resource (all clients). */
  apiRequests: Record<string, number>;
  /** Reconciles by kind from the submission to the last Pod seen (with controllerMetrics). */
  reconciles?: Record<string, number>;
  /**
   * Event-loop delay of the bench's main thread (backend and embedded broker)
   * while the runs were submitted and dispatched, ms: time a schedule spends
   * waiting for the broker to route it, which a remote backend would not add.
   */
  benchLoopDelay: { p50: number; p99: number; max: number };
  /** [ms after the first publish, publish -> seen ms] per run, in publish order (JSON output only). */
  samples?: [number, number][];
}

export interface ColdStartResult {
  /** Runs submitted one after another, each to the autoscaled pool back at 0 workers. */
  runs: number;
  /** POST /api/runs -> its run Pod Running, ms: a worker made, registered, connected, then the run's Pod. */
  submitToRunning: Percentiles;
  /** A bare copy of a run Pod: create -> Running, ms (the node's share of the above). */
  bare: Percentiles;
  /** submitToRunning.p50 / bare.p50. */
  p50Ratio: number;
}

export interface LatencyResult {
  /** Runs submitted one after another to idle workers of the main pool. */
  runs: number;
  /** POST /api/runs -> its run Pod Running, ms. */
  submitToRunning: Percentiles;
  /** A bare copy of a run Pod on the same node: create -> Running, ms. */
  bare: Percentiles;
  p50Ratio: number;
  p99Ratio: number;
}

export interface LifecycleResult {
  /** Short runs taken from submission to their end, one after another on idle workers. */
  runs: number;
  /** API writes per run, all resources together (create, patch, update, delete; the controller's and the kubelet's). */
  writesPerRun: number;
  /**
   * The controller's writes per run, by "VERB resource[/subresource]": Pods
   * (create, the end), Workers' and the pool's status; not the kubelet's
   * status and events, nor the Pod deletions (the kubelet deletes a Pod once it
   * stopped, the controller a finished one it does not keep), which the
   * counters cannot tell apart.
   */
  controllerWritesPerRun: Record<string, number>;
  /** 409 answers to the controller during the runs (the end's write no longer races the kubelet's). */
  conflicts: number;
}

export interface FailoverResult {
  /** SIGKILL of the leader -> the standby holds the Lease, seconds. */
  toLeaderSeconds: number;
  /** -> its caches synced. */
  toSyncedSeconds: number;
  /** -> every worker's session re-announced to the backend from the new leader. */
  toAdoptedSeconds: number;
  leaseDurationSeconds: number;
  workers: number;
  busy: number;
}

export interface RecoveryResult {
  workers: number;
  busy: number;
  /** SIGKILL -> every worker's session re-announced by the new process, seconds. */
  seconds: number;
  /** New process start -> its caches synced. */
  startToSyncedSeconds?: number;
  /** Caches synced -> every worker re-announced. */
  syncedToAdoptedSeconds?: number;
  duplicatePods: number;
  reRegistered: number;
  secretsRewritten: number;
  wrongStatus: string[];
  runsNotRunning: number;
  leaderElect: boolean;
  /** Reconciles by kind of the new process until every worker was re-adopted (with controllerMetrics). */
  reconciles?: Record<string, number>;
  /** CPU seconds by process from the kill to the last worker re-announced (the new controller: since its start). */
  cpu?: Record<string, number>;
  /** kube-apiserver requests by "VERB resource" over the same span (everyone's: the counters do not say who asked). */
  apiRequests?: Record<string, number>;
}

export interface BenchResult {
  date: string;
  cores: number;
  node: string;
  kubernetes?: string;
  /** 1-minute load average at the start and the end: other work on the machine shows here. */
  load: { start: number; end: number };
  /** True when no node ran the run Pods and the bench played the kubelet (more Pods than one node's maxPods). */
  playedKubelet: boolean;
  options: { workers: number; runs: number; idleSeconds: number; baselineSeconds: number; keys: number; controller: 'tsx' | 'compiled'; protocolVersion?: ProtocolVersion; broker?: BenchBroker };
  scale: ScaleResult;
  idle?: IdleResult;
  dispatch?: DispatchResult;
  latency?: LatencyResult;
  lifecycle?: LifecycleResult;
  coldStart?: ColdStartResult;
  failover?: FailoverResult;
  recovery?: RecoveryResult;
  problems: string[];
}

// ---------------------------------------------------------------------------

export function percentiles(samples: readonly number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  // Nearest rank: p99 of 100 samples is the 99th smallest.
  const rank = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: rank(50), p99: rank(99), max: s[s.length - 1] ?? NaN };
}

function median(samples: readonly number[]): number {
  return percentiles(samples).p50;
}

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The processes of the backend side, named for the CPU readings: this one (with the embedded broker), and mosquitto. */
function backendPids(ctx: Ctx): Record<string, number> {
  const pid = ctx.backend.brokerPid;
  return pid === undefined ? { 'bench (backend, broker)': process.pid } : { 'bench (backend)': process.pid, mosquitto: pid };
}

const round = (v: number, digits = 2): number => Math.round(v * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------------------

interface Ctx {
  opts: BenchOptions;
  cluster: BenchCluster;
  backend: BenchBackend;
  watches: WatchThread;
  namespace: string;
  poolId: string;
  poolName: string;
  /** Latest WorkerPool status seen by the watch, and when. */
  poolStatus: { t: number; status: Record<string, unknown> };
  poolWaiters: Set<() => void>;
  controller: ControllerProcess;
  controllers: ControllerProcess[];
  compiledMain?: string;
  logDir: string;
  problems: string[];
}

async function startController(ctx: Ctx, leaderElect: boolean, label: string): Promise<ControllerProcess> {
  const metricsPort = ctx.opts.controllerMetrics === true ? await freePort() : undefined;
  const c = new ControllerProcess({
    metricsPort,
    kubeconfigPath: ctx.cluster.kubeconfigPath,
    namespace: ctx.namespace,
    leaderElect,
    logFile: join(ctx.logDir, `controller-${label}.log`),
    cpuProfDir: ctx.opts.cpuProfDir,
    compiledMain: ctx.compiledMain,
    heapSnapshotDir: ctx.opts.heapSnapshotDir,
  });
  ctx.controllers.push(c);
  ctx.controller = c;
  return c;
}

/** Resolves with the watch time at which the pool status first satisfies `check`. */
function poolStatusWhen(ctx: Ctx, what: string, check: (s: Record<string, unknown>) => boolean, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const test = (): boolean => {
      if (!check(ctx.poolStatus.status)) return false;
      clearTimeout(timer);
      ctx.poolWaiters.delete(test);
      resolve(ctx.poolStatus.t);
      return true;
    };
    const timer = setTimeout(() => {
      ctx.poolWaiters.delete(test);
      reject(new Error(`bench: timed out after ${timeoutMs} ms waiting for the WorkerPool status: ${what}; last status ${JSON.stringify(ctx.poolStatus.status)}`));
    }, timeoutMs);
    if (!test()) ctx.poolWaiters.add(test);
  });
}

const num = (v: unknown): number => (typeof v === 'number' ? v : -1);

/** Wall time of each key of this type generated one after another. */
async function measureKeys(type: WorkerKeyType, count: number): Promise<number[]> {
  await generateWorkerKeyPair(type); // warm-up: the first call loads OpenSSL's code for the type
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await generateWorkerKeyPair(type);
    samples.push(performance.now() - t);
  }
  return samples;
}

async function workers(ctx: Ctx): Promise<WorkerObject[]> {
  return (await ctx.cluster.client.listAll(WORKER_REF, ctx.namespace)).items;
}

// ---------------------------------------------------------------------------

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const log = opts.log;
  const cores = availableParallelism();
  const runs = opts.runs ?? opts.workers;
  if (runs > opts.workers) throw new Error(`--runs (${runs}) cannot exceed --workers (${opts.workers})`);
  const problems: string[] = [];
  const loadStart = loadavg()[0] ?? 0;
  const logDir = mkdtempSync(join(tmpdir(), 'kwc-bench-logs-'));
  log(`controller logs in ${logDir}`);

  const compiledMain = opts.compiled === true ? (opts.noBuild === true ? COMPILED_MAIN : await buildController(log)) : undefined;
  const cluster = await startBenchCluster({ kubeconfigPath: opts.kubeconfigPath, kubectl: opts.kubectl, runImages: opts.runImages, pods: runs, log });
  log(cluster.runImages !== undefined ? 'the run Pods really run on the node' : 'no node runs the run Pods: the bench plays the kubelet for them');
  let backend: BenchBackend | undefined;
  let watches: WatchThread | undefined;
  let ctx: Ctx | undefined;
  const namespaces: string[] = [];
  try {
    await install(cluster);
    const namespace = await createNamespace(cluster, 'bench');
    const bareNamespace = await createNamespace(cluster, 'bench-bare');
    namespaces.push(namespace, bareNamespace);
    log(`namespaces ${namespace} (controller) and ${bareNamespace} (bare pods)`);

    backend = await startBenchBackend(opts.protocolVersion, opts.broker);
    const pool = await backend.admin<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: 'bench' });
    if (pool.status !== 201) throw new Error(`create pool: HTTP ${pool.status}`);
    const keyType = workerKeyTypeFor(parsePoolToken(pool.body.token).protocolVersion);
    log(`measuring the cost of one worker key pair of the pool's type, ${keyType} (${opts.keys} in a row)`);
    const keySamples = await measureKeys(keyType, opts.keys);
    const poolName = 'bench';
    await cluster.client.create(SECRETS, namespace, {
      metadata: { name: `${poolName}-credentials` },
      stringData: { token: pool.body.token, privateKey: pool.body.privateKey },
    });
    await cluster.client.create(WORKERPOOL_REF, namespace, {
      metadata: { name: poolName },
      spec: {
        poolSize: 0,
        token: { secretKeyRef: { name: `${poolName}-credentials`, key: 'token' } },
        privateKey: { secretKeyRef: { name: `${poolName}-credentials`, key: 'privateKey' } },
      },
    });

    watches = await WatchThread.start(cluster.kc);
    ctx = {
      opts,
      cluster,
      backend,
      watches,
      namespace,
      poolId: pool.body.id,
      poolName,
      poolStatus: { t: 0, status: {} },
      poolWaiters: new Set(),
      controller: undefined as unknown as ControllerProcess,
      controllers: [],
      compiledMain,
      logDir,
      problems,
    };
    const c = ctx;
    await watches.watch(resourcePath(WORKERPOOL_REF, namespace), { fieldSelector: `metadata.name=${poolName}` }, (e: WatchEvent) => {
      if (e.type !== 'ADDED' && e.type !== 'MODIFIED') return;
      c.poolStatus = { t: e.t, status: e.object.status ?? {} };
      for (const w of [...c.poolWaiters]) w();
    });

    // The apiserver's own requests, before any controller runs: subtracted from the idle window.
    let background: RequestCounts = new Map();
    if (opts.phases.has('idle')) {
      log(`measuring the apiserver's own background requests for ${opts.baselineSeconds} s`);
      const before = await scrapeRequestCounts(cluster.kc);
      await sleep(opts.baselineSeconds * 1000);
      background = diffCounts(before, await scrapeRequestCounts(cluster.kc));
    }

    const controller = await startController(ctx, opts.phases.has('idle') || opts.phases.has('failover'), 'main');
    await controller.waitForLog('caches synced');
    await poolStatusWhen(ctx, 'credentials accepted at poolSize 0', (s) => num(s.desiredPoolSize) === 0 && JSON.stringify(s.conditions ?? []).includes('CredentialsAccepted'), 60_000);
    await sleep(1000);
    const rssBase = memoryOf(controller.pid).rssMiB;

    const scale = await scaleOut(ctx, { type: keyType, wallMs: keySamples }, cores, bareNamespace);
    const result: BenchResult = {
      date: new Date().toISOString(),
      cores,
      node: process.version,
      kubernetes: cluster.versions?.kubernetes,
      load: { start: loadStart, end: 0 },
      playedKubelet: cluster.runImages === undefined,
      options: { workers: opts.workers, runs, idleSeconds: opts.idleSeconds, baselineSeconds: opts.baselineSeconds, keys: opts.keys, controller: opts.compiled === true ? 'compiled' : 'tsx', protocolVersion: opts.protocolVersion, broker: opts.broker },
      scale,
      problems,
    };
    if (opts.phases.has('idle')) result.idle = await idle(ctx, background, rssBase);
    if (opts.phases.has('lifecycle')) {
      if (cluster.runImages === undefined) log('lifecycle: skipped, no node runs the run Pods at this size');
      else result.lifecycle = await lifecycle(ctx, Math.min(20, opts.workers));
    }
    if (opts.phases.has('coldstart')) {
      if (cluster.runImages === undefined) log('coldstart: skipped, no node runs the run Pods at this size');
      else result.coldStart = await coldStart(ctx, bareNamespace, opts.coldStartRuns ?? 20);
    }
    if (opts.phases.has('latency')) {
      if (cluster.runImages === undefined) log('latency: skipped, no node runs the run Pods at this size');
      else result.latency = await latency(ctx, bareNamespace, opts.latencyRuns ?? 50);
    }
    if (opts.phases.has('dispatch') || opts.phases.has('failover') || opts.phases.has('recovery')) {
      try {
        const dispatched = await dispatch(ctx, runs, bareNamespace);
        if (opts.phases.has('dispatch')) result.dispatch = dispatched.result;
        if (opts.phases.has('failover')) result.failover = await failover(ctx, dispatched.runIds);
        if (opts.phases.has('recovery')) result.recovery = await recovery(ctx, dispatched.runIds);
      } catch (err) {
        // The measures taken so far stand; the table shows the missing ones and this says why.
        problems.push(`dispatch, failover and recovery stopped: ${err instanceof Error ? err.message : String(err)}`);
        log(`dispatch, failover and recovery stopped: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    result.load.end = loadavg()[0] ?? 0;
    if (watches.problems.length > 0) problems.push(...watches.problems.map((p) => `watch: ${p}`));
    if (watches.resumes > 0) problems.push(`${watches.resumes} watch(es) ended by the server and resumed from their last resourceVersion`);
    return result;
  } finally {
    for (const c of ctx?.controllers ?? []) await c.stop();
    await watches?.close();
    await backend?.stop();
    // On a cluster that outlives the bench, its run Pods stop with their namespaces.
    if (opts.kubeconfigPath !== undefined) for (const ns of namespaces) await kubectlRun(cluster, ['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------

async function scaleOut(ctx: Ctx, keys: { type: WorkerKeyType; wallMs: number[] }, cores: number, bareNamespace: string): Promise<ScaleResult> {
  const { opts, cluster, backend } = ctx;
  const n = opts.workers;
  const keySamples = keys.wallMs;
  const keyMedianMs = median(keySamples);
  ctx.opts.log(`scale-out: poolSize 0 -> ${n} (${keys.type} keys, median ${keyMedianMs.toFixed(2)} ms)`);

  // Per-worker milestones, by worker name (Secret name = Worker name) and by worker id.
  const created = new Map<string, number>();
  const idOf = new Map<string, string>();
  const keyStored = new Map<string, number>();
  const certStored = new Map<string, number>();
  const statusConnected = new Map<string, number>();
  const onlineAt = new Map<string, number>();
  const stopWorkers = await ctx.watches.watch(resourcePath(WORKER_REF, ctx.namespace), {}, (e) => {
    const name = e.object.name ?? '';
    if (e.type === 'ADDED' && !created.has(name)) {
      created.set(name, e.t);
      idOf.set(name, String(e.object.spec?.workerId ?? ''));
    }
    if (e.object.status?.connected === true && !statusConnected.has(name)) statusConnected.set(name, e.t);
  });
  const stopSecrets = await ctx.watches.watch(resourcePath(SECRETS, ctx.namespace), {}, (e) => {
    const name = e.object.name ?? '';
    if (!keyStored.has(name)) keyStored.set(name, e.t);
    if (e.type === 'MODIFIED' && !certStored.has(name)) certStored.set(name, e.t);
  });
  let allOnlineAt: number | undefined;
  backend.tap.onReceive = (r) => {
    if (r.message.type !== 'state' || r.message.state === 'offline' || onlineAt.has(r.workerId)) return;
    onlineAt.set(r.workerId, r.t);
    if (onlineAt.size === n && allOnlineAt === undefined) allOnlineAt = r.t;
  };
  const meter = new CpuMeter(() => ({ controller: ctx.controller.pid, ...backendPids(ctx), ...cluster.pids }));
  const reconcilesBefore = await reconcileCounts(ctx.controller);
  const apiBefore = await scrapeRequestCounts(cluster.kc);
  meter.begin();
  const t0 = nowMs();
  await cluster.client.mergePatch(WORKERPOOL_REF, ctx.namespace, ctx.poolName, { spec: { poolSize: n } });
  const done = await poolStatusWhen(ctx, `actualPoolSize == ${n}`, (s) => num(s.actualPoolSize) === n, Math.max(180_000, n * 1_000));
  const cpu = meter.end();
  // Less the bench's own patch of poolSize.
  // Pods are left out: the controller makes none in a scale-out, and on a node the kubelet's writes would count.
  const writes = controllerWrites(diffCounts(apiBefore, await scrapeRequestCounts(cluster.kc)), CONTROLLER_RESOURCES.filter((r) => r !== 'pods'));
  writes.set('PATCH workerpools', (writes.get('PATCH workerpools') ?? 0) - 1);
  if ((writes.get('PATCH workerpools') ?? 0) <= 0) writes.delete('PATCH workerpools');
  const reconciles = diffRecord(reconcilesBefore, await reconcileCounts(ctx.controller));
  backend.tap.onReceive = undefined;
  stopWorkers();
  stopSecrets();
  const seconds = (done - t0) / 1000;
  const stage = (from: (w: string) => number | undefined, to: (w: string) => number | undefined): { p50: number; max: number } => {
    const d: number[] = [];
    for (const w of created.keys()) {
      const a = from(w);
      const b = to(w);
      if (a !== undefined && b !== undefined) d.push((b - a) / 1000);
    }
    const p = percentiles(d);
    return { p50: round(p.p50), max: round(p.max) };
  };
  const stages = {
    'patch -> Worker created': stage(() => t0, (w) => created.get(w)),
    'Worker created -> key Secret': stage((w) => created.get(w), (w) => keyStored.get(w)),
    'key Secret -> registered': stage((w) => keyStored.get(w), (w) => certStored.get(w)),
    'registered -> session online': stage((w) => certStored.get(w), (w) => onlineAt.get(idOf.get(w) ?? '')),
    'session online -> status connected': stage((w) => onlineAt.get(idOf.get(w) ?? ''), (w) => statusConnected.get(w)),
    'last status connected -> pool status': stage(() => Math.max(...statusConnected.values()), () => done),
  };
  ctx.opts.log(`scale-out: ${seconds.toFixed(2)} s`);
  const bareClient = KubeClient.fromKubeConfig(cluster.kc);
  let limit: ScaleLimit;
  try {
    limit = await measureScaleLimit({ client: bareClient, controllerNamespace: ctx.namespace, bareNamespace, poolName: ctx.poolName, workers: n, writes, keyMedianMs, cores, backend, log: opts.log });
  } finally {
    bareClient.rest.close();
  }
  if (limit.notReplayed.length > 0) ctx.problems.push(`scale-out limit: no bare copy of ${limit.notReplayed.join(', ')}`);
  ctx.opts.log(`scale-out limit: ${limit.seconds.toFixed(2)} s (ratio ${(seconds / limit.seconds).toFixed(2)})`);
  return {
    workers: n,
    seconds,
    workersPerSecond: n / seconds,
    keyType: keys.type,
    keyMedianMs,
    keySamplesMs: keySamples.map((v) => round(v, 2)),
    cores,
    limitSeconds: limit.seconds,
    limit,
    ratio: seconds / limit.seconds,
    backendOnlineSeconds: allOnlineAt === undefined ? undefined : (allOnlineAt - t0) / 1000,
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v)])),
    stages,
    reconciles,
  };
}

/** What the controller reads and writes besides its Lease; other resources in the counts are kube-apiserver's own. */
export const CONTROLLER_RESOURCES = ['workerpools', 'workers', 'pods', 'secrets', 'events'];

async function idle(ctx: Ctx, background: RequestCounts, rssBase: number): Promise<IdleResult> {
  const { opts, cluster, backend, controller } = ctx;
  const n = opts.workers;
  await poolStatusWhen(ctx, `idleWorkers == ${n}`, (s) => num(s.idleWorkers) === n, 60_000);
  // Let the last status writes and session announcements of the scale-out pass.
  await sleep(5_000);
  opts.log(`idle: ${n} idle workers for ${opts.idleSeconds} s`);
  let mqtt = 0;
  backend.tap.onReceive = () => void mqtt++;
  const meter = new CpuMeter(() => ({ controller: controller.pid }));
  const before = await scrapeRequestCounts(cluster.kc);
  meter.begin();
  const t0 = nowMs();
  await sleep(opts.idleSeconds * 1000);
  const after = await scrapeRequestCounts(cluster.kc);
  const seconds = (nowMs() - t0) / 1000;
  const cpu = meter.end().controller ?? 0;
  backend.tap.onReceive = undefined;
  const mem = memoryOf(controller.pid);
  const heapSnapshot = opts.heapSnapshotDir === undefined ? undefined : await controller.heapSnapshot();
  if (heapSnapshot !== undefined) opts.log(`idle: heap snapshot ${heapSnapshot}`);

  const window = perMinute(diffCounts(before, after), seconds);
  const bg = perMinute(background, opts.baselineSeconds);
  const net = new Map<string, number>();
  for (const key of new Set([...window.keys(), ...bg.keys()])) {
    const v = (window.get(key) ?? 0) - (bg.get(key) ?? 0);
    if (Math.abs(v) >= 0.05) net.set(key, round(v, 1));
  }
  const ours = (key: string): boolean => CONTROLLER_RESOURCES.includes(key.split(' ')[1]?.split('/')[0] ?? '');
  const perMin: Record<string, number> = {};
  const lease: Record<string, number> = {};
  for (const [k, v] of [...net].sort()) {
    if (k.endsWith(' leases')) lease[k] = v;
    else perMin[k] = v;
  }
  // Resources only the controller uses are counted raw (no subtraction needed or wanted).
  const rawOurs = [...window].filter(([k]) => ours(k));
  const listPerMinute = round(rawOurs.filter(([k]) => k.startsWith('LIST ')).reduce((a, [, v]) => a + v, 0), 1);
  const getPerMinute = round(rawOurs.filter(([k]) => k.startsWith('GET ')).reduce((a, [, v]) => a + v, 0), 1);
  return {
    workers: n,
    seconds: round(seconds, 1),
    perMinute: perMin,
    leasePerMinute: lease,
    backgroundPerMinute: Object.fromEntries([...bg].sort().map(([k, v]) => [k, round(v, 1)])),
    listPerMinute,
    getPerMinute,
    mqttPerMinute: round((mqtt * 60) / seconds, 1),
    controllerCpuPercent: round((cpu / seconds) * 100, 2),
    rssBaseMiB: round(rssBase, 1),
    rssMiB: round(mem.rssMiB, 1),
    peakMiB: round(mem.peakMiB, 1),
    mibPerWorker: round((mem.rssMiB - rssBase) / n, 3),
    ...(heapSnapshot === undefined ? {} : { heapSnapshot }),
  };
}

/** A run for the bench: on a node, the stand-in images running until stopped; otherwise an image no node pulls. */
function runBody(ctx: Ctx): Record<string, unknown> {
  const images = ctx.cluster.runImages;
  if (images === undefined) return { poolId: ctx.poolId, runnerImage: 'registry.example.com/runner:bench' };
  // One sleeping process per Pod, no polling: a hundred busy loops would load the two cores the bench measures on.
  return { poolId: ctx.poolId, ...images, env: { KWC_STANDIN_SCRIPT: 'trap "exit 143" TERM; sleep 86400 & wait $!' } };
}

async function dispatch(ctx: Ctx, runs: number, bareNamespace: string): Promise<{ result: DispatchResult; runIds: string[] }> {
  const { opts, cluster, backend, watches } = ctx;
  opts.log(`dispatch: ${runs} runs at once to idle workers`);
  const firstSend = new Map<string, number>();
  let sends = 0;
  backend.tap.onSend = (s) => {
    if (s.message.type !== 'schedule') return;
    sends++;
    if (!firstSend.has(s.message.runId)) firstSend.set(s.message.runId, s.t);
  };
  const podSeen = new Map<string, number>();
  const stopPods = await watches.watch(resourcePath(PODS, ctx.namespace), {}, (e) => {
    const runId = e.object.labels?.[LABEL_RUN_ID];
    if (e.type === 'ADDED' && runId !== undefined && !podSeen.has(runId)) podSeen.set(runId, e.t);
  });
  const submitted = new Map<string, number>();
  const reconcilesBefore = await reconcileCounts(ctx.controller);
  const apiBefore = await scrapeRequestCounts(cluster.kc);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const runIds = await Promise.all(
    Array.from({ length: runs }, async () => {
      const t = nowMs();
      const res = await backend.admin<{ id: string }>('POST', '/api/runs', runBody(ctx));
      if (res.status !== 201) throw new Error(`submit run: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      submitted.set(res.body.id, t);
      return res.body.id;
    }),
  );
  await until(`${runs} run pods`, () => runIds.every((id) => podSeen.has(id)), Math.max(60_000, runs * 200));
  loop.disable();
  const apiRequests = Object.fromEntries([...diffCounts(apiBefore, await scrapeRequestCounts(cluster.kc))].sort());
  const reconciles = diffRecord(reconcilesBefore, await reconcileCounts(ctx.controller));
  stopPods();
  backend.tap.onSend = undefined;
  const latency = runIds.map((id) => (podSeen.get(id) as number) - (firstSend.get(id) as number));
  const submitToPod = runIds.map((id) => (podSeen.get(id) as number) - (submitted.get(id) as number));
  await poolStatusWhen(ctx, `busyWorkers == ${runs}`, (s) => num(s.busyWorkers) === runs, 60_000);
  await sleep(2_000);

  // The limit: the very same Pods, created bare at once by a KubeClient, timed the same way.
  opts.log(`dispatch: the same ${runs} pods created bare`);
  const pods = (await cluster.client.listAll(PODS, ctx.namespace, { labelSelector: LABEL_RUN_ID })).items;
  const bareClient = KubeClient.fromKubeConfig(cluster.kc);
  const namespaces = resource('', 'v1', 'namespaces', 'Namespace');
  // Warm connections, as the controller's client has them.
  await Promise.all(Array.from({ length: Math.min(runs, 64) }, () => bareClient.get(namespaces, undefined, bareNamespace)));
  const bareSeen = new Map<string, number>();
  const stopBare = await watches.watch(resourcePath(PODS, bareNamespace), {}, (e) => {
    if (e.type === 'ADDED' && e.object.name !== undefined && !bareSeen.has(e.object.name)) bareSeen.set(e.object.name, e.t);
  });
  const issued = new Map<string, number>();
  await Promise.all(
    pods.map(async (p) => {
      const bare: Pod = {
        metadata: { name: p.metadata?.name, labels: p.metadata?.labels, annotations: p.metadata?.annotations },
        // As the controller created them (not yet bound to a node), and gated, so that the
        // node does not run them too: they exist only to time their creation.
        spec: { ...p.spec, containers: p.spec?.containers ?? [], nodeName: undefined, schedulingGates: [{ name: 'workers.spacelift.io/bench-bare' }] },
      };
      issued.set(p.metadata?.name ?? '', nowMs());
      await bareClient.create(PODS, bareNamespace, bare);
    }),
  );
  await until(`${pods.length} bare pods`, () => pods.every((p) => bareSeen.has(p.metadata?.name ?? '')), Math.max(60_000, runs * 200));
  stopBare();
  bareClient.rest.close();
  const bare = [...issued].map(([name, t]) => (bareSeen.get(name) as number) - t);

  const d = percentiles(latency);
  const b = percentiles(bare);
  return {
    runIds,
    result: {
      runs,
      dispatch: roundP(d),
      submitToPod: roundP(percentiles(submitToPod)),
      bare: roundP(b),
      p50Ratio: round(d.p50 / b.p50),
      resentSchedules: sends - firstSend.size,
      apiRequests,
      reconciles,
      samples: (() => {
        const first = Math.min(...firstSend.values());
        return runIds
          .map((id): [number, number] => [round((firstSend.get(id) as number) - first, 1), round((podSeen.get(id) as number) - (firstSend.get(id) as number), 1)])
          .sort((a, b) => a[0] - b[0]);
      })(),
      benchLoopDelay: { p50: round(loop.percentile(50) / 1e6, 1), p99: round(loop.percentile(99) / 1e6, 1), max: round(loop.max / 1e6, 1) },
    },
  };
}

/**
 * What one run costs the API server from submission to end: `runs` short
 * runs, one after another, each waited for to finish, with kube-apiserver's
 * own request counters read before and after.
 */
async function lifecycle(ctx: Ctx, runs: number): Promise<LifecycleResult> {
  const { opts, cluster, backend } = ctx;
  const images = cluster.runImages;
  if (images === undefined) throw new Error('lifecycle needs a node');
  opts.log(`lifecycle: ${runs} short runs from submission to end, counting API writes`);
  const before = await scrapeRequestCounts(cluster.kc);
  const conflictsBefore = await conflictCount(cluster.kc);
  for (let i = 0; i < runs; i++) {
    const res = await backend.admin<{ id: string }>('POST', '/api/runs', { poolId: ctx.poolId, ...images, env: { KWC_STANDIN_SCRIPT: 'exit 0' } });
    if (res.status !== 201) throw new Error(`submit run: HTTP ${res.status}`);
    await until(`run ${res.body.id} finished`, async () => (await backend.admin<{ state: string }>('GET', `/api/runs/${res.body.id}`)).body.state === 'finished', 120_000, 100);
  }
  // The end's clean-up (the finished Pod deleted, the Worker idle again) lands just after the backend has the end.
  await poolStatusWhen(ctx, 'every worker idle again', (s) => num(s.busyWorkers) === 0 && num(s.idleWorkers) === opts.workers, 60_000);
  await sleep(3_000);
  const writes = diffCounts(before, await scrapeRequestCounts(cluster.kc));
  const isWrite = (key: string): boolean => /^(CREATE|POST|PATCH|UPDATE|PUT|DELETE|APPLY) /.test(key);
  // The controller's own writes: the kubelet writes pods/status and events, the scheduler pods/binding.
  const ours = [...writes].filter(([k]) => isWrite(k) && /^\S+ (pods|workers|workerpools|secrets)(\/status)?$/.test(k) && k !== 'PATCH pods/status' && !k.startsWith('DELETE pods'));
  const total = [...writes].filter(([k]) => isWrite(k)).reduce((a, [, v]) => a + v, 0);
  return {
    runs,
    writesPerRun: round(total / runs),
    controllerWritesPerRun: Object.fromEntries(ours.map(([k, v]) => [k, round(v / runs)]).sort()),
    conflicts: (await conflictCount(cluster.kc)) - conflictsBefore,
  };
}

/**
 * From zero workers to a running run (issue 20): a second pool, autoscaled
 * between 0 and 1 with a 1 s scale-down delay, gets `runs` runs one after
 * another, each once the pool is back at 0 Workers. The limit is the node's
 * own share: the same Pod spec created bare, create -> Running.
 */
async function coldStart(ctx: Ctx, bareNamespace: string, runs: number): Promise<ColdStartResult> {
  const { opts, cluster, backend } = ctx;
  opts.log(`coldstart: ${runs} runs, each to an autoscaled pool at 0 workers`);
  const created = await backend.admin<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: 'bench-cold' });
  if (created.status !== 201) throw new Error(`create pool: HTTP ${created.status}`);
  const name = 'bench-cold';
  await cluster.client.create(SECRETS, ctx.namespace, { metadata: { name: `${name}-credentials` }, stringData: { token: created.body.token, privateKey: created.body.privateKey } });
  await cluster.client.create(WORKERPOOL_REF, ctx.namespace, {
    metadata: { name },
    spec: {
      poolSize: 0,
      autoscaling: { minPoolSize: 0, maxPoolSize: 1, scaleDownDelay: '1s' },
      token: { secretKeyRef: { name: `${name}-credentials`, key: 'token' } },
      privateKey: { secretKeyRef: { name: `${name}-credentials`, key: 'privateKey' } },
    },
  });
  const workersOfPool = async (): Promise<number> => (await cluster.client.listAll(WORKER_REF, ctx.namespace, { labelSelector: `${LABEL_WORKERPOOL}=${created.body.id}` })).items.length;
  const timed = await runsToRunning(ctx, created.body.id, runs, () => until(`pool ${name} at 0 workers`, async () => (await workersOfPool()) === 0, 120_000, 100));
  opts.log(`coldstart: the same Pod created bare ${runs} times, one after another`);
  const bare = await bareToRunning(ctx, timed.template, bareNamespace, runs, 'cold-bare');
  await cluster.client.delete(WORKERPOOL_REF, ctx.namespace, name).catch(() => undefined);
  const c = percentiles(timed.samples);
  const b = percentiles(bare);
  return { runs, submitToRunning: roundP(c), bare: roundP(b), p50Ratio: round(c.p50 / b.p50) };
}

/**
 * Queue-to-run latency on idle workers (issue 19): `runs` short runs one
 * after another on the main pool, each from POST /api/runs to its run Pod's
 * first Running on a watch; against a bare copy of the run Pod, create ->
 * Running, in the same run on the same node.
 */
async function latency(ctx: Ctx, bareNamespace: string, runs: number): Promise<LatencyResult> {
  const { cluster } = ctx;
  ctx.opts.log(`latency: ${runs} runs one after another on idle workers`);
  const busyNone = (): Promise<number> => poolStatusWhen(ctx, 'no busy worker', (st) => num(st.busyWorkers) === 0, 120_000);
  const timed = await runsToRunning(ctx, ctx.poolId, runs, async () => {
    await busyNone();
  });
  ctx.opts.log(`latency: the same Pod created bare ${runs} times, one after another`);
  const bare = await bareToRunning(ctx, timed.template, bareNamespace, runs, 'latency-bare');
  await busyNone();
  // The measures after this one time bursts: the node's teardown of these Pods must not fall in them.
  await until('the latency Pods gone', async () => (await cluster.client.listAll(PODS, ctx.namespace)).items.length + (await cluster.client.listAll(PODS, bareNamespace)).items.length === 0, 120_000, 500);
  await sleep(10_000);
  const c = percentiles(timed.samples);
  const b = percentiles(bare);
  return { runs, submitToRunning: roundP(c), bare: roundP(b), p50Ratio: round(c.p50 / b.p50), p99Ratio: round(c.p99 / b.p99) };
}

/**
 * Submits `runs` short runs to a pool one after another (each once `ready`
 * resolves, each waited for to finish) and times POST /api/runs -> the run
 * Pod's first Running seen on a watch. Returns the samples and the first run
 * Pod, to be copied bare.
 */
async function runsToRunning(ctx: Ctx, poolId: string, runs: number, ready: () => Promise<unknown>): Promise<{ samples: number[]; template: Pod }> {
  const { cluster, backend, watches } = ctx;
  const images = cluster.runImages;
  if (images === undefined) throw new Error('timing runs to Running needs a node');
  const running = new Map<string, number>();
  const stopPods = await watches.watch(resourcePath(PODS, ctx.namespace), {}, (e) => {
    const runId = e.object.labels?.[LABEL_RUN_ID];
    if (runId !== undefined && e.object.status?.phase === 'Running' && !running.has(runId)) running.set(runId, e.t);
  });
  const samples: number[] = [];
  let template: Pod | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      await ready();
      const t = nowMs();
      const res = await backend.admin<{ id: string }>('POST', '/api/runs', { poolId, ...images, env: { KWC_STANDIN_SCRIPT: 'sleep 1' } });
      if (res.status !== 201) throw new Error(`submit run: HTTP ${res.status}`);
      const id = res.body.id;
      await until(`run ${id} Running`, () => running.has(id), 120_000);
      samples.push((running.get(id) as number) - t);
      if (template === undefined) template = (await cluster.client.listAll(PODS, ctx.namespace, { labelSelector: `${LABEL_RUN_ID}=${id}` })).items[0];
      await until(`run ${id} finished`, async () => (await backend.admin<{ state: string }>('GET', `/api/runs/${id}`)).body.state === 'finished', 120_000, 100);
    }
  } finally {
    stopPods();
  }
  if (template === undefined) throw new Error('no run Pod to copy');
  return { samples, template };
}

/** A bare copy of `template` created `runs` times one after another in `namespace`: create -> Running on a watch, ms. */
async function bareToRunning(ctx: Ctx, template: Pod, namespace: string, runs: number, prefix: string): Promise<number[]> {
  const { cluster, watches } = ctx;
  const bareRunning = new Map<string, number>();
  const stopBare = await watches.watch(resourcePath(PODS, namespace), {}, (e) => {
    if (e.object.name !== undefined && e.object.status?.phase === 'Running' && !bareRunning.has(e.object.name)) bareRunning.set(e.object.name, e.t);
  });
  const bare: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const podName = `${prefix}-${i}`;
      const t = nowMs();
      await cluster.client.create(PODS, namespace, { metadata: { name: podName }, spec: { ...template.spec, containers: template.spec?.containers ?? [], nodeName: undefined } });
      await until(`bare pod ${podName} Running`, () => bareRunning.has(podName), 120_000);
      bare.push((bareRunning.get(podName) as number) - t);
      await cluster.client.delete(PODS, namespace, podName).catch(() => undefined);
    }
  } finally {
    stopBare();
  }
  return bare;
}

/** 409 answers kube-apiserver gave (to anyone) so far. */
async function conflictCount(kc: BenchCluster['kc']): Promise<number> {
  return scrapeCodeCount(kc, '409');
}

/**
 * Failover: a standby controller campaigns beside the leader; the leader is
 * SIGKILLed (no chance to release its Lease) and the standby's takeover is
 * timed: the Lease, its caches, every worker's session re-announced.
 */
async function failover(ctx: Ctx, runIds: string[]): Promise<FailoverResult> {
  const { opts, backend } = ctx;
  const leader = ctx.controller;
  const standby = await startController(ctx, true, 'standby');
  await standby.waitForLog('starting');
  await sleep(3_000);
  const all = await workers(ctx);
  const expected = new Set(all.map((w) => w.spec.workerId));
  const adopted = new Set<string>();
  let tKill = 0;
  let tAdopted = 0;
  // Each worker's session dies with the leader (the broker publishes its will, `offline`); the new
  // leader's session then announces the worker again. Heartbeats still in flight at the kill do not count.
  const gone = new Set<string>();
  backend.tap.onReceive = (r) => {
    if (tKill === 0 || r.message.type !== 'state' || !expected.has(r.workerId) || adopted.has(r.workerId)) return;
    if (r.message.state === 'offline') gone.add(r.workerId);
    else if (gone.has(r.workerId)) adopted.add(r.workerId);
    if (adopted.size === expected.size) tAdopted = r.t;
  };
  opts.log(`failover: SIGKILL the leader with ${runIds.length} busy of ${expected.size} workers; a standby waits`);
  tKill = nowMs();
  await leader.kill('SIGKILL');
  const became = await standby.waitForLog('became leader', 120_000);
  const synced = await standby.waitForLog('caches synced', 120_000);
  await until(`all ${expected.size} workers re-announced by the new leader`, () => tAdopted > 0, 120_000);
  backend.tap.onReceive = undefined;
  const at = (r: Record<string, unknown>): number => (typeof r.ts === 'string' ? Date.parse(r.ts) : NaN);
  // Log timestamps are wall-clock ms; the kill is on the same clock (nowMs is performance-based, in epoch ms).
  const seconds = (t: number): number => round((t - tKill) / 1000);
  const result: FailoverResult = {
    toLeaderSeconds: seconds(at(became)),
    toSyncedSeconds: seconds(at(synced)),
    toAdoptedSeconds: seconds(tAdopted),
    leaseDurationSeconds: 15,
    workers: expected.size,
    busy: runIds.length,
  };
  opts.log(`failover: leader in ${result.toLeaderSeconds} s, caches synced in ${result.toSyncedSeconds} s, every worker back in ${result.toAdoptedSeconds} s`);
  return result;
}

/** The controller's reconcile counters by kind, when it serves metrics. */
async function reconcileCounts(c: ControllerProcess): Promise<Record<string, number> | undefined> {
  if (c.options.metricsPort === undefined) return undefined;
  const text = await fetch(`http://127.0.0.1:${c.options.metricsPort}/metrics`).then((r) => r.text()).catch(() => '');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^workerpool_controller_reconcile_total\{([^}]*)\} (\S+)$/gm)) {
    const kind = /kind="([^"]*)"/.exec(m[1] ?? '')?.[1] ?? '?';
    out[kind] = (out[kind] ?? 0) + Number(m[2]);
  }
  return out;
}

function diffRecord(a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> | undefined {
  if (a === undefined || b === undefined) return undefined;
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]));
}

function roundP(p: Percentiles): Percentiles {
  return { n: p.n, p50: round(p.p50, 1), p99: round(p.p99, 1), max: round(p.max, 1) };
}

async function recovery(ctx: Ctx, runIds: string[]): Promise<RecoveryResult> {
  const { opts, cluster, backend } = ctx;
  const n = opts.workers;
  const pods = (await cluster.client.listAll(PODS, ctx.namespace, { labelSelector: LABEL_RUN_ID })).items;
  if (cluster.runImages === undefined) {
    opts.log(`recovery: ${pods.length} run pods set Running (playing the kubelet: no node runs them)`);
    await withConcurrency(pods.length, 16, async (i) => {
      await cluster.client.mergePatch(PODS, ctx.namespace, pods[i]?.metadata?.name ?? '', { status: runningPodStatus() }, { subresource: 'status' });
    });
  } else {
    opts.log(`recovery: waiting for the kubelet to run the ${pods.length} run pods`);
  }
  const runState = async (): Promise<Map<string, string>> => {
    const res = await backend.admin<{ id: string; state: string }[]>('GET', `/api/runs?poolId=${ctx.poolId}`);
    return new Map(res.body.map((r) => [r.id, r.state]));
  };
  await until('every run to be running in the backend', async () => {
    const states = await runState();
    return runIds.every((id) => states.get(id) === 'running');
  }, Math.max(120_000, runIds.length * 100), 250);
  await poolStatusWhen(ctx, `busyWorkers == ${runIds.length}`, (s) => num(s.busyWorkers) === runIds.length, 60_000);
  await sleep(2_000);

  // What must survive the kill unchanged.
  const before = await workers(ctx);
  const runOfWorker = new Map(pods.map((p) => [p.metadata?.labels?.['workers.spacelift.io/worker'] ?? '', p.metadata?.labels?.[LABEL_RUN_ID] ?? '']));
  const secretsBefore = new Map(
    (await cluster.client.listAll(SECRETS, ctx.namespace)).items.map((s) => [s.metadata?.name ?? '', s.metadata?.resourceVersion ?? '']),
  );
  const registeredBefore = (backend.logCounts.get('worker registered') ?? 0) + (backend.logCounts.get('worker registered again') ?? 0);

  // Re-adoption as the backend sees it: each worker's session announces its state again, from the new process.
  const expected = new Map(before.map((w) => [w.spec.workerId, runOfWorker.get(w.spec.workerId)]));
  const adopted = new Map<string, number>();
  const leaderElect = opts.recoveryLeaderElect === true;
  let tKill = 0;
  backend.tap.onReceive = (r) => {
    if (tKill === 0 || r.message.type !== 'state' || adopted.has(r.workerId) || !expected.has(r.workerId)) return;
    const run = expected.get(r.workerId);
    const ok = run === undefined ? r.message.state === 'idle' : r.message.state === 'busy' && r.message.runId === run;
    if (ok) adopted.set(r.workerId, r.t);
  };
  opts.log(`recovery: SIGKILL the controller with ${pods.length} busy of ${n} workers`);
  const meter = new CpuMeter(() => ({ ...backendPids(ctx), ...cluster.pids }));
  const apiBefore = await scrapeRequestCounts(cluster.kc);
  meter.begin();
  tKill = nowMs();
  await ctx.controller.kill('SIGKILL');
  const next = await startController(ctx, leaderElect, 'recovery');
  const spawnedAt = nowMs();
  await until(`all ${n} workers re-adopted`, () => adopted.size === expected.size, Math.max(120_000, n * 500));
  // The new process's whole life so far is the recovery's.
  const cpu = { controller: cpuSecondsOf(next.pid), ...meter.end() };
  backend.tap.onReceive = undefined;
  const apiRequests = Object.fromEntries([...diffCounts(apiBefore, await scrapeRequestCounts(cluster.kc))].sort());
  const reconciles = await reconcileCounts(next);
  const tAdopted = Math.max(...adopted.values());
  const synced = next.records().find((r) => r.msg === 'caches synced');
  const syncedAt = typeof synced?.ts === 'string' ? Date.parse(synced.ts) : undefined;

  // Verify after the new process has had a moment to write anything it would write.
  await sleep(3_000);
  const podsAfter = (await cluster.client.listAll(PODS, ctx.namespace, { labelSelector: LABEL_RUN_ID })).items;
  const perRun = new Map<string, number>();
  for (const p of podsAfter) {
    const id = p.metadata?.labels?.[LABEL_RUN_ID] ?? '';
    perRun.set(id, (perRun.get(id) ?? 0) + 1);
  }
  const duplicatePods = [...perRun.values()].reduce((a, v) => a + Math.max(0, v - 1), 0) + Math.max(0, podsAfter.length - pods.length);
  const secretsAfter = (await cluster.client.listAll(SECRETS, ctx.namespace)).items;
  const secretsRewritten = secretsAfter.filter((s) => secretsBefore.get(s.metadata?.name ?? '') !== s.metadata?.resourceVersion).length;
  const registeredAfter = (backend.logCounts.get('worker registered') ?? 0) + (backend.logCounts.get('worker registered again') ?? 0);
  const wrongStatus: string[] = [];
  for (const w of await workers(ctx)) {
    const run = runOfWorker.get(w.spec.workerId);
    const s = w.status;
    const ok = run === undefined ? s?.state === 'Idle' && s.connected === true : s?.state === 'Busy' && s.currentRunID === run && s.connected === true && s.registered === true;
    if (!ok) wrongStatus.push(`${w.metadata.name}: ${JSON.stringify({ state: s?.state, connected: s?.connected, currentRunID: s?.currentRunID, expectedRun: run })}`);
  }
  const states = await runState();
  const runsNotRunning = runIds.filter((id) => states.get(id) !== 'running').length;
  const seconds = (tAdopted - tKill) / 1000;
  opts.log(`recovery: ${seconds.toFixed(2)} s`);
  if (duplicatePods + secretsRewritten + wrongStatus.length + runsNotRunning + registeredAfter - registeredBefore > 0) {
    ctx.problems.push(
      `recovery not clean: duplicate pods ${duplicatePods}, re-registrations ${registeredAfter - registeredBefore}, Secrets rewritten ${secretsRewritten}, runs not running ${runsNotRunning}, Worker statuses wrong ${wrongStatus.length}${wrongStatus.length > 0 ? ` (first: ${wrongStatus.slice(0, 3).join('; ')})` : ''}`,
    );
  }
  return {
    workers: n,
    busy: pods.length,
    seconds,
    startToSyncedSeconds: syncedAt === undefined ? undefined : round((syncedAt - spawnedAt) / 1000),
    syncedToAdoptedSeconds: syncedAt === undefined ? undefined : round((tAdopted - syncedAt) / 1000),
    duplicatePods,
    reRegistered: registeredAfter - registeredBefore,
    secretsRewritten,
    wrongStatus,
    runsNotRunning,
    leaderElect,
    reconciles,
    cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v)])),
    apiRequests,
  };
}
