/**
 * `npm run demo [-- --keep | --down | --help]`: the whole system on embedded
 * defaults, on one machine, with nothing installed by hand.
 *
 * It builds (first time only) the Kubernetes binaries and the images, starts
 * a local cluster whose node (containerd + kubelet) really runs Pods, starts
 * the reference backend with its embedded MQTT broker, installs
 * dist/manifests.yaml with the locally built controller image (the
 * controller runs as a Pod), creates the documented Secret and a WorkerPool
 * of two workers, submits two runs with the backend's command-line client
 * that really run on the node (one prints a plan and succeeds, one fails),
 * prints their logs as the backend has them, and a third run showing the
 * pool's binaries cache reused, and prints what a user looks at. Then it stops
 * everything it started and puts the host back, or with `--keep` leaves it
 * running for `kubectl` and `npm run demo -- --down`.
 *
 * The node needs root (bridge, network namespaces, cgroups); without it the
 * demo stops at once naming what is missing. State lives in $KWC_DEMO_DIR
 * (default .cache/demo).
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { delimiter, dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { binariesPresent, binaryPaths, ensureBinaries, repoRoot } from '../cluster/binaries.js';
import { nodePreflight, readControlPlaneState, startControlPlane, stopControlPlaneFromState, type ControlPlane } from '../cluster/control-plane.js';
import { withDirectoryLock } from '../cluster/lock.js';
import { freeLoopbackPorts } from '../cluster/ports.js';
import { signalGroup, spawnWatchdog, stopGroup } from '../cluster/processes.js';
import { RUN_POD_UID } from '../api/constants.js';
import { buildImages } from '../images/build.js';
import { decodeSecretPrivateKey } from '../protocol/token.js';
import { httpsGetInsecure, runsWith, startBackground, startChild, waitForLogLine, type Child } from './children.js';
import { Progress } from './progress.js';

const USAGE = `usage: npm run demo [-- --keep]   run the demo; --keep leaves it running
       npm run demo -- --down     stop a demo left running by --keep
Everything lives in $KWC_DEMO_DIR (default .cache/demo); the first run builds
the Kubernetes binaries and etcd from the Go module proxy (Go required) and the
images, and installs containerd, runc and the CNI plugins from Debian (root required).
`;

const POOL = 'demo';
const NAMESPACE = 'default';
const POOL_SIZE = 2;
const SECRET = `${POOL}-credentials`;
const STATE_FILE = 'demo.json';
const STEPS = 10;
const CONTROLLER_NAMESPACE = 'spacelift-worker-controller-system';
const DEPLOYMENT = 'kube-workerpool-controller';

const demoDir = process.env.KWC_DEMO_DIR ?? join(repoRoot, '.cache', 'demo');

/** What a `--keep` demo leaves behind, so that `--down` (or the next demo) can stop it. */
interface DemoState {
  demoPid: number;
  clusterDir: string;
  backendPid?: number;
  kubeconfigPath?: string;
  apiUrl?: string;
}

class StepFailed extends Error {}

/** Single-quotes for a POSIX shell, only where needed. */
function quote(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
  const flag = /^(--[\w-]+=)(.*)$/s.exec(arg);
  if (flag !== null) return `${flag[1]}${quote(flag[2] ?? '')}`;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function exec(file: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdin?: string; timeoutMs?: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { cwd: opts.cwd, env: opts.env, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 180_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')}: ${error.message}`));
        return;
      }
      resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
    });
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  });
}

function readState(): DemoState | undefined {
  try {
    return JSON.parse(readFileSync(join(demoDir, STATE_FILE), 'utf8')) as DemoState;
  } catch {
    return undefined;
  }
}

/** Stops what a state file names: the backend, then the cluster (the controller is one of its Pods). */
async function stopFromState(state: DemoState): Promise<string[]> {
  const stopped: string[] = [];
  if (state.backendPid !== undefined && runsWith(state.backendPid, 'src/backend/main.ts')) {
    await stopGroup(state.backendPid);
    stopped.push(`backend (pid ${state.backendPid})`);
  }
  const plane = readControlPlaneState(state.clusterDir);
  if (plane !== undefined) {
    await stopControlPlaneFromState(plane);
    stopped.push(`cluster (${plane.server}${plane.node !== undefined ? `, node ${plane.node.name}` : ''})`);
  }
  return stopped;
}

/** Empties the demo directory but keeps its lock file. */
function cleanDemoDir(): void {
  mkdirSync(demoDir, { recursive: true, mode: 0o700 });
  for (const name of readdirSync(demoDir)) if (name !== '.lock') rmSync(join(demoDir, name), { recursive: true, force: true });
}

async function down(): Promise<void> {
  await withDirectoryLock(demoDir, async () => {
    const state = readState();
    if (state === undefined) {
      process.stdout.write(`no demo recorded in ${demoDir}; nothing to stop\n`);
      return;
    }
    const stopped = await stopFromState(state);
    cleanDemoDir();
    process.stdout.write(stopped.length > 0 ? `stopped: ${stopped.join(', ')}\n` : 'the recorded demo was not running any more; cleaned up\n');
  }, 2_000).catch((err: Error) => {
    if (/is held by process/.test(err.message)) throw new Error(`${err.message}: a demo is still starting or running in ${demoDir}; stop it with Ctrl-C first`);
    throw err;
  });
}

/** The admin API of the backend, as `curl --cacert ca.pem -H "Authorization: Bearer $(cat admin-token)"` would call it. */
function backendApi(apiUrl: string, caPem: string, token: string) {
  return <T>(method: string, path: string, body?: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = httpsRequest(
        new URL(path, apiUrl),
        {
          method,
          ca: caPem,
          timeout: 30_000,
          headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 300) reject(new Error(`backend ${method} ${path}: ${res.statusCode} ${text}`));
            else resolve(JSON.parse(text) as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`backend ${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(data);
    });
}

async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(300);
  }
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3))).join('')).join('\n');
}

interface RunView {
  id: string;
  state: string;
  workerId: string | null;
  reason: string | null;
  exitCode?: number | null;
}

interface PodList {
  items: { metadata: { name: string; labels?: Record<string, string> }; status?: { phase?: string } }[];
}

/** The demo's two runs: the scripts their worker containers run (files in the demo's directory, submitted with the command-line client). */
const RUN_SCRIPTS: readonly (readonly [file: string, script: string])[] = [
  ['plan.sh', 'echo "planning run $SPACELIFT_RUN_ID in $(pwd)"\nsleep 4\necho "  + resource \\"null_resource\\" \\"demo\\" will be created"\necho "Plan: 1 to add, 0 to change, 0 to destroy."\n'],
  ['apply.sh', 'echo "applying run $SPACELIFT_RUN_ID"\nsleep 4\necho "Error: the provider refused the change" >&2\nexit 1\n'],
];
/** The third run: what the pool's binaries cache holds, and which run put it there. */
const CACHE_SCRIPT: readonly [file: string, script: string] = ['cache.sh', 'echo "tools on PATH from the binaries cache: $(command -v kwc)"\nkwc cache\n'];

async function demo(keep: boolean): Promise<void> {
  const p = new Progress(STEPS);
  const rel = (path: string): string => {
    const r = relative(process.cwd(), path);
    return r.startsWith('..') ? path : r;
  };
  const state: DemoState = { demoPid: process.pid, clusterDir: join(demoDir, 'cluster') };
  const writeState = (): void => writeFileSync(join(demoDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  let plane: ControlPlane | undefined;
  let backend: Child | undefined;
  let watchdogPid: number | undefined;
  let finished = false;

  const stopAll = async (): Promise<void> => {
    if (backend !== undefined) await stopGroup(backend.pid);
    if (watchdogPid !== undefined) signalGroup(watchdogPid, 'SIGKILL');
    await plane?.stop();
  };
  let interrupted: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (finished) return;
    finished = true;
    p.stop();
    process.stderr.write(`\n${signal}: stopping everything the demo started...\n`);
    interrupted = stopAll()
      .catch((err: Error) => {
        process.stderr.write(`while stopping: ${err.message}\n`);
      })
      .finally(() => {
        rmSync(join(demoDir, STATE_FILE), { force: true });
        process.stderr.write('stopped\n');
        process.exit(130);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  process.stdout.write(
    `kube-workerpool-controller demo (state and logs in ${rel(demoDir)})\n` +
      'A local cluster whose node runs real Pods, the reference backend, the controller (a Pod, from dist/manifests.yaml),\n' +
      'a WorkerPool of two workers and two runs that the kubelet runs.\n',
  );

  try {
    // 1. Binaries (after the node's preflight: without root nothing would come of them).
    p.step('Kubernetes binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl, crictl)');
    await nodePreflight((line) => p.note(line));
    const wanted = binaryPaths();
    if (binariesPresent(wanted)) {
      p.note(`cached: kubernetes ${wanted.versions.kubernetes}, etcd ${wanted.versions.etcd} in ${rel(dirname(dirname(wanted.kubectl)))}`);
    } else {
      p.note(`first run: building kubernetes ${wanted.versions.kubernetes}, etcd ${wanted.versions.etcd} and crictl ${wanted.versions.crictl} from the Go module proxy into ${rel(dirname(dirname(wanted.kubectl)))}`);
      p.note('once per clone: about 15 minutes on two cores with an empty Go build cache, a few with a warm one');
    }
    const build = p.lines('build: ');
    const binaries = await ensureBinaries({ progress: build });
    build.end();
    const kubectlDir = dirname(binaries.kubectl);

    // 2. Host pieces and images.
    p.step('host pieces (Debian packages) and images (npm run images)');
    p.note('containerd, runc, the CNI plugins and nftables are installed (from Debian, on first use)');
    const images = await buildImages(['pause', 'controller', 'launcher', 'runner'], { log: (line) => p.note(line) });
    p.output(table([
      ['IMAGE', 'REFERENCE (by content digest)'],
      ['pause', images.pause.ref],
      ['controller', images.controller.ref],
      ['launcher (init, launcher-grpc)', images.launcher.ref],
      ['runner (worker)', images.runner.ref],
    ]));
    p.note('the controller image holds what the Dockerfile builds; the reference launcher and runner (src/images/kwc, busybox for the scripts) are the backend\'s default images, UID 1983');

    // 3. Cluster.
    p.step('a local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a node (containerd + kubelet)');
    state.clusterDir = join(demoDir, 'cluster');
    writeState();
    plane = await startControlPlane({
      dir: state.clusterDir,
      binaries,
      log: (line) => p.note(line),
      watchParentPid: process.pid,
      node: true,
      images: [images.controller.archive, images.launcher.archive, images.runner.archive],
    });
    state.kubeconfigPath = plane.kubeconfigPath;
    writeState();
    const nodeAddress = plane.state.node?.address ?? '127.0.0.1';
    p.note(`KUBECONFIG=${rel(plane.kubeconfigPath)}; "kubectl" below is ${rel(binaries.kubectl)}`);

    const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: plane.kubeconfigPath, PATH: `${kubectlDir}${delimiter}${process.env.PATH ?? ''}` };
    const cwd = demoDir;
    /** Runs kubectl, prints the command and its output; a failure ends the demo with kubectl's message. */
    const kubectl = async (args: readonly string[], opts: { show?: boolean; cwd?: string } = {}): Promise<string> => {
      const show = opts.show ?? true;
      if (show) p.command(`kubectl ${args.map(quote).join(' ')}`);
      const res = await exec(binaries.kubectl, args, { cwd: opts.cwd ?? cwd, env });
      if (res.code !== 0) throw new StepFailed(`kubectl ${args.join(' ')} exited ${res.code}: ${res.stderr.trim()}`);
      if (show) p.output(res.stdout + res.stderr);
      return res.stdout;
    };
    /** Runs a shell command line exactly as printed. */
    const shell = async (line: string): Promise<string> => {
      p.command(line);
      const res = await exec('sh', ['-c', line], { cwd, env });
      if (res.code !== 0) throw new StepFailed(`${line} exited ${res.code}: ${res.stderr.trim()}`);
      p.output(res.stdout + res.stderr);
      return res.stdout;
    };
    await kubectl(['get', 'nodes', '-o', 'wide']);

    // 4. Backend.
    p.step('the reference backend with its embedded MQTT broker');
    const [apiPort, brokerPort] = (await freeLoopbackPorts(2, nodeAddress)) as [number, number];
    const backendDir = join(demoDir, 'backend');
    // On the node's bridge address: the controller runs in a Pod, which cannot reach loopback, and pool tokens carry this URL.
    const backendArgs = ['--data-dir', backendDir, '--host', nodeAddress, '--port', String(apiPort), '--broker-port', String(brokerPort)];
    p.note(`as: npm run backend -- ${backendArgs.map((a) => quote(a === backendDir ? rel(a) : a)).join(' ')}`);
    p.note(`(${nodeAddress} is the node's bridge address: Pods reach the host there, and nothing outside this machine does)`);
    backend = startChild('backend', process.execPath, ['--import', 'tsx', join('src', 'backend', 'main.ts'), ...backendArgs], {
      cwd: repoRoot,
      env: process.env,
      logFile: join(demoDir, 'backend.log'),
    });
    state.backendPid = backend.pid;
    writeState();
    watchdogPid = spawnWatchdog(process.pid, [backend.pid], join(demoDir, 'watchdog-backend.log')).pid;
    const ready = await waitForLogLine(backend, /^backend ready: api=(\S+) broker=(\S+)$/m, 60_000);
    const apiUrl = ready[1] as string;
    state.apiUrl = apiUrl;
    writeState();
    p.note(`API ${apiUrl}, broker ${ready[2]}; admin token in ${rel(join(backendDir, 'admin-token'))}, CA in ${rel(join(backendDir, 'ca.pem'))}`);
    const api = backendApi(apiUrl, readFileSync(join(backendDir, 'ca.pem'), 'utf8'), readFileSync(join(backendDir, 'admin-token'), 'utf8').trim());
    /** The backend's command-line client, as a user runs it from the demo's directory. */
    const client = async (args: readonly string[]): Promise<string> => {
      p.command(`npm run -s backend -- ${args.map(quote).join(' ')}`);
      const res = await exec(process.execPath, ['--import', 'tsx', join('src', 'backend', 'main.ts'), ...args], {
        cwd: repoRoot,
        env: { ...process.env, INIT_CWD: cwd, KWC_BACKEND_DIR: backendDir },
      });
      if (res.code !== 0) throw new StepFailed(`npm run -s backend -- ${args.join(' ')} exited ${res.code}: ${res.stderr.trim()}`);
      p.output(res.stdout);
      return res.stdout;
    };

    // 5. Install: the controller runs as a Pod.
    p.step('the install: kubectl apply -f dist/manifests.yaml, with the locally built controller image');
    await kubectl(['apply', '-f', 'dist/manifests.yaml'], { cwd: repoRoot });
    await kubectl(['-n', CONTROLLER_NAMESPACE, 'set', 'image', `deployment/${DEPLOYMENT}`, `manager=${images.controller.digestRef}`]);
    p.note('the controller is a Pod on the node; its readiness probe (/readyz, through the kubelet) says when its caches are synced');
    await kubectl(['-n', CONTROLLER_NAMESPACE, 'rollout', 'status', `deployment/${DEPLOYMENT}`, '--timeout=180s']);
    await kubectl(['-n', CONTROLLER_NAMESPACE, 'get', 'deployments,pods', '-o', 'wide']);

    // 6. The pool.
    p.step(`a pool in the backend, its Secret, and a WorkerPool with poolSize ${POOL_SIZE}`);
    const created = await api<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: POOL });
    writeFileSync(join(demoDir, 'worker-pool.config'), created.token, { mode: 0o600 });
    writeFileSync(join(demoDir, 'key.pem'), decodeSecretPrivateKey(created.privateKey), { mode: 0o600 });
    p.note(`backend pool ${created.id}: its token is in worker-pool.config and its private key in key.pem (in ${rel(demoDir)}), as a user downloads them`);
    await shell(`kubectl create secret generic ${SECRET} --namespace ${NAMESPACE} --from-literal=token="$(cat worker-pool.config)" --from-literal=privateKey="$(base64 -w 0 < key.pem)"`);
    // A binaries cache that outlives one run Pod (a hostPath on the one node here; a PersistentVolume elsewhere), writable by the run user.
    const cacheDir = join(demoDir, 'binaries-cache');
    mkdirSync(cacheDir, { recursive: true });
    chownSync(cacheDir, RUN_POD_UID, RUN_POD_UID);
    const manifest = [
      'apiVersion: workers.spacelift.io/v1beta1',
      'kind: WorkerPool',
      'metadata:',
      `  name: ${POOL}`,
      `  namespace: ${NAMESPACE}`,
      'spec:',
      `  poolSize: ${POOL_SIZE}`,
      '  token:',
      '    secretKeyRef:',
      `      name: ${SECRET}`,
      '      key: token',
      '  privateKey:',
      '    secretKeyRef:',
      `      name: ${SECRET}`,
      '      key: privateKey',
      '  pod:',
      '    binariesCacheVolume:',
      '      hostPath:',
      `        path: ${cacheDir}`,
      '        type: Directory',
      '',
    ].join('\n');
    writeFileSync(join(demoDir, 'workerpool.yaml'), manifest);
    await shell('cat workerpool.yaml');
    await kubectl(['apply', '-f', 'workerpool.yaml']);
    p.note('each worker gets an RSA key, registers with the backend and opens its MQTT session; no Pod yet');
    await kubectl(['wait', `--for=jsonpath={.status.actualPoolSize}=${POOL_SIZE}`, `workerpool/${POOL}`, '--timeout=120s']);
    await kubectl(['get', 'workerpools']);
    await kubectl(['get', 'workers']);
    const workers = JSON.parse(await kubectl(['get', 'workers', '-o', 'json'], { show: false })) as { items: { metadata: { name: string }; spec: { workerId: string } }[] };

    // 7. Runs, run by the kubelet.
    p.step('two runs: the backend schedules them, the controller creates their Pods, the kubelet runs them');
    const runIds: string[] = [];
    for (const [file, script] of RUN_SCRIPTS) {
      writeFileSync(join(cwd, file), script);
      await shell(`cat ${file}`);
      runIds.push((await client(['runs', 'submit', '--pool', created.id, file])).trim());
    }
    p.note(`submitted runs ${runIds.join(' and ')}: init puts each script into the run's workspace, worker runs it there`);
    const podOf = async (runId: string): Promise<string> => {
      const list = JSON.parse(await kubectl(['get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`, '-o', 'json'], { show: false })) as PodList;
      const name = list.items[0]?.metadata.name;
      if (name === undefined) throw new Error(`no pod yet for run ${runId}`);
      return name;
    };
    const pods = await waitUntil('the run Pods', 60_000, async () => Promise.all(runIds.map(podOf)));
    await waitUntil('both runs to be running in the backend', 60_000, async () => {
      const runs = await Promise.all(runIds.map((id) => api<RunView>('GET', `/api/runs/${id}`)));
      if (runs.some((r) => ['finished', 'failed', 'stopped'].includes(r.state))) return true;
      return runs.every((r) => r.state === 'running') ? true : undefined;
    });
    await kubectl(['get', 'workers']);
    for (const runId of runIds) await kubectl(['get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`, '-o', 'wide']);
    const ended = await waitUntil('both runs to end in the backend', 90_000, async () => {
      const runs = await Promise.all(runIds.map((id) => api<RunView>('GET', `/api/runs/${id}`)));
      return runs.every((r) => ['finished', 'failed', 'stopped'].includes(r.state)) ? runs : undefined;
    });

    // 8. What a user looks at.
    p.step('what happened, as a user sees it');
    p.note(`the backend's view: GET ${apiUrl}/api/runs?poolId=${created.id}`);
    const runs = await api<RunView[]>('GET', `/api/runs?poolId=${created.id}`);
    p.output(table([['RUN', 'STATE', 'WORKER', 'EXIT CODE', 'REASON'], ...runs.map((r) => [r.id, r.state, r.workerId ?? '', r.exitCode === null || r.exitCode === undefined ? '' : String(r.exitCode), r.reason ?? ''])]));
    await waitUntil('both workers to be idle again', 60_000, async () => {
      const list = JSON.parse(await kubectl(['get', 'workers', '-o', 'json'], { show: false })) as { items: { status?: { state?: string } }[] };
      return list.items.length === POOL_SIZE && list.items.every((w) => w.status?.state === 'Idle') ? true : undefined;
    });
    const pool = await waitUntil("the backend's workers to be idle", 30_000, async () => {
      const view = await api<{ pendingRuns: number; workers: { id: string; state: string; drained: boolean }[] }>('GET', `/api/pools/${created.id}`);
      return view.workers.every((w) => w.state === 'idle') ? view : undefined;
    });
    p.note(`the backend's workers of pool ${created.id} (GET ${apiUrl}/api/pools/${created.id}), ${pool.pendingRuns} runs pending:`);
    p.output(table([['WORKER', 'STATE', 'DRAINED'], ...pool.workers.map((w) => [w.id, w.state, String(w.drained)])]));
    await kubectl(['get', 'workerpools']);
    await kubectl(['get', 'workers']);
    for (const runId of runIds) await kubectl(['get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`]);
    p.note("each run's log, as the backend has it (the controller relays what worker prints):");
    for (const runId of runIds) await client(['logs', runId]);
    p.note("the successful run's Pod is deleted when it ends; the failed one is kept (failedPodsHistoryLimit, 5 per worker by default), and kubectl shows the same log:");
    await kubectl(['logs', pods[1] as string, '-c', 'worker']);
    p.note("a third run: the pool's binaries cache was filled by one of the first runs, and this one's init reuses it");
    writeFileSync(join(cwd, CACHE_SCRIPT[0]), CACHE_SCRIPT[1]);
    await shell(`cat ${CACHE_SCRIPT[0]}`);
    const cacheRun = (await client(['runs', 'submit', '--pool', created.id, CACHE_SCRIPT[0]])).trim();
    const cacheEnded = await waitUntil(`run ${cacheRun} to end in the backend`, 90_000, async () => {
      const r = await api<RunView>('GET', `/api/runs/${cacheRun}`);
      return ['finished', 'failed', 'stopped'].includes(r.state) ? r : undefined;
    });
    if (cacheEnded.state !== 'finished') throw new StepFailed(`the cache run ${cacheRun} ended ${cacheEnded.state}: ${cacheEnded.reason ?? ''}`);
    await client(['logs', cacheRun]);
    const failedRun = ended[1] as RunView;
    const failedWorker = workers.items.find((w) => w.spec.workerId === failedRun.workerId);
    if (failedWorker !== undefined) {
      const workerName = failedWorker.metadata.name;
      await waitUntil(`the RunFailed event of worker ${workerName}`, 30_000, async () => {
        const events = JSON.parse(await kubectl(['events', '--namespace', NAMESPACE, '--for', `worker/${workerName}`, '-o', 'json'], { show: false })) as { items: { reason?: string }[] };
        return events.items.some((e) => e.reason === 'RunFailed') ? true : undefined;
      });
      await kubectl(['events', '--namespace', NAMESPACE, '--for', `worker/${workerName}`]);
    }

    // 9. Metrics, as a scraper gets them.
    p.step('the metrics, through the Service, with a token of the metrics reader role');
    await kubectl(['create', 'serviceaccount', 'demo-scraper', '--namespace', NAMESPACE]);
    await kubectl(['create', 'clusterrolebinding', 'demo-scraper-metrics', '--clusterrole=kube-workerpool-controller-metrics-reader', `--serviceaccount=${NAMESPACE}:demo-scraper`]);
    const token = (await kubectl(['create', 'token', 'demo-scraper', '--namespace', NAMESPACE], { show: false })).trim();
    p.command(`kubectl -n ${CONTROLLER_NAMESPACE} port-forward service/kube-workerpool-controller-metrics :8443 &`);
    const forward = startBackground(binaries.kubectl, ['-n', CONTROLLER_NAMESPACE, 'port-forward', 'service/kube-workerpool-controller-metrics', ':8443'], { cwd, env });
    try {
      const port = await waitUntil('kubectl port-forward', 30_000, async () => /Forwarding from 127\.0\.0\.1:(\d+) -> 8443/.exec(forward.output())?.[1]);
      const url = `https://127.0.0.1:${port}/metrics`;
      p.command(`curl -k -H "Authorization: Bearer $(kubectl create token demo-scraper)" ${url}`);
      const res = await httpsGetInsecure(url, token);
      if (res.status !== 200) throw new StepFailed(`GET ${url}: ${res.status} ${res.body.slice(0, 200)}`);
      p.output(res.body.split('\n').filter((l) => l.startsWith('spacelift_') && !/_bucket\{/.test(l)).slice(0, 20).join('\n'));
      p.note(`without a token: ${(await httpsGetInsecure(url)).status}`);
    } finally {
      forward.stop();
    }

    // 10. Stop or keep.
    if (keep) {
      p.step('left running (--keep)');
      signalGroup(watchdogPid, 'SIGKILL');
      watchdogPid = undefined;
      if (plane.state.watchdogPid !== undefined) signalGroup(plane.state.watchdogPid, 'SIGKILL');
      finished = true;
      p.stop();
      const backendRel = rel(backendDir);
      process.stdout.write(
        [
          '',
          'Everything is still running. In another shell:',
          `  export KUBECONFIG=${plane.kubeconfigPath}`,
          `  export PATH=${kubectlDir}:$PATH   # the kubectl of the same version`,
          '  kubectl get workerpools,workers,pods',
          `  kubectl -n ${CONTROLLER_NAMESPACE} logs deployment/${DEPLOYMENT}`,
          `  kubectl scale workerpools ${POOL} --replicas=3`,
          '',
          `Backend API: ${apiUrl} (CA ${backendRel}/ca.pem, admin token file ${backendRel}/admin-token). Submit a run of your own script and follow its log:`,
          `  export KWC_BACKEND_DIR=${backendDir}`,
          `  npm run -s backend -- runs submit --pool ${created.id} --follow my-script.sh`,
          `Logs: ${rel(join(demoDir, 'backend.log'))}, ${rel(state.clusterDir)}/*.log (kube-apiserver, kubelet, containerd, ...)`,
          '',
          'Stop everything with: npm run demo -- --down',
          '',
        ].join('\n'),
      );
      return;
    }
    p.step('stopping everything the demo started');
    finished = true;
    await stopAll();
    cleanDemoDir();
    p.note('backend and cluster stopped, the controller with it; the host is as before');
    p.stop();
    process.stdout.write(`\nDemo finished in ${p.elapsed}. Run it again with --keep to look around with kubectl yourself.\n`);
  } catch (err) {
    const failedAt = `step ${p.stepNumber}/${STEPS} (${p.stepTitle})`;
    p.stop();
    // Interrupted: the steps fail because their processes are being stopped; the signal handler exits.
    if (interrupted !== undefined) await interrupted;
    if (finished) throw err;
    finished = true;
    process.stderr.write(`\ndemo FAILED at ${failedAt}: ${(err as Error).message}\n`);
    process.stderr.write(`logs are kept in ${demoDir}; stopping everything the demo started...\n`);
    await stopAll().catch((stopErr: Error) => process.stderr.write(`while stopping: ${stopErr.message}\n`));
    rmSync(join(demoDir, STATE_FILE), { force: true });
    process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: { keep: { type: 'boolean' }, down: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.down === true) {
    await down();
    return;
  }
  await withDirectoryLock(demoDir, async () => {
    const previous = readState();
    if (previous !== undefined) {
      const stopped = await stopFromState(previous);
      if (stopped.length > 0) process.stdout.write(`stopped the demo left running before: ${stopped.join(', ')}\n`);
    }
    cleanDemoDir();
    await demo(values.keep === true);
  }, 2_000).catch((err: Error) => {
    if (/is held by process/.test(err.message)) throw new Error(`another demo is running in ${demoDir} (${err.message}); wait for it or stop it with Ctrl-C`);
    throw err;
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
