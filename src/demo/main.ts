/**
 * `npm run demo [-- --keep | --down | --help]`: the whole system on embedded
 * defaults, on one machine, with nothing installed by hand.
 *
 * It builds (first time only) and starts a local control plane, starts the
 * reference backend with its embedded MQTT broker, installs
 * dist/manifests.yaml, runs the controller as a local process, creates the
 * documented Secret and a WorkerPool of two workers, submits two runs, plays
 * the kubelet for their Pods (there is none here), and prints what a user
 * looks at. Then it stops everything it started, or with `--keep` leaves it
 * running for `kubectl` and `npm run demo -- --down`.
 *
 * State lives in $KWC_DEMO_DIR (default .cache/demo).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { delimiter, dirname, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { binariesPresent, binaryPaths, ensureBinaries, repoRoot } from '../cluster/binaries.js';
import { readControlPlaneState, startControlPlane, stopControlPlaneFromState, type ControlPlane } from '../cluster/control-plane.js';
import { withDirectoryLock } from '../cluster/lock.js';
import { freeLoopbackPorts } from '../cluster/ports.js';
import { signalGroup, spawnWatchdog, stopGroup } from '../cluster/processes.js';
import { decodeSecretPrivateKey } from '../protocol/token.js';
import { httpGet, runsWith, startChild, waitForHttpOk, waitForLogLine, type Child } from './children.js';
import { endedPodStatus, runningPodStatus } from '../cluster/kubelet-play.js';
import { Progress } from './progress.js';

const USAGE = `usage: npm run demo [-- --keep]   run the demo; --keep leaves it running
       npm run demo -- --down     stop a demo left running by --keep
Everything lives in $KWC_DEMO_DIR (default .cache/demo); the first run builds
kube-apiserver, kubectl and etcd from the Go module proxy (Go required).
`;

const POOL = 'demo';
const NAMESPACE = 'default';
const POOL_SIZE = 2;
const SECRET = `${POOL}-credentials`;
const STATE_FILE = 'demo.json';
const STEPS = 9;

const demoDir = process.env.KWC_DEMO_DIR ?? join(repoRoot, '.cache', 'demo');

/** What a `--keep` demo leaves behind, so that `--down` (or the next demo) can stop it. */
interface DemoState {
  demoPid: number;
  clusterDir: string;
  backendPid?: number;
  controllerPid?: number;
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

/** Stops what a state file names: controller, backend, then the control plane. */
async function stopFromState(state: DemoState): Promise<string[]> {
  const stopped: string[] = [];
  if (state.controllerPid !== undefined && runsWith(state.controllerPid, 'src/controller/cli/main.ts')) {
    await stopGroup(state.controllerPid);
    stopped.push(`controller (pid ${state.controllerPid})`);
  }
  if (state.backendPid !== undefined && runsWith(state.backendPid, 'src/backend/main.ts')) {
    await stopGroup(state.backendPid);
    stopped.push(`backend (pid ${state.backendPid})`);
  }
  const plane = readControlPlaneState(state.clusterDir);
  if (plane !== undefined) {
    await stopControlPlaneFromState(plane);
    stopped.push(`control plane (${plane.server})`);
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
  let controller: Child | undefined;
  let watchdogPid: number | undefined;
  let finished = false;

  const stopAll = async (): Promise<void> => {
    // The controller first, while the API server and the backend can still hear it say goodbye.
    if (controller !== undefined) await stopGroup(controller.pid);
    if (backend !== undefined) await stopGroup(backend.pid);
    await plane?.stop();
    if (watchdogPid !== undefined) signalGroup(watchdogPid, 'SIGKILL');
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
      'A local control plane, the reference backend, the controller, a WorkerPool of two workers and two runs.\n' +
      'There is no kubelet here (only etcd and kube-apiserver): the demo plays the kubelet and writes the run Pods\' statuses itself.\n',
  );

  try {
    // 1. Binaries.
    p.step('Kubernetes binaries (kube-apiserver, kubectl, etcd)');
    const wanted = binaryPaths();
    if (binariesPresent(wanted)) {
      p.note(`cached: kubernetes ${wanted.versions.kubernetes}, etcd ${wanted.versions.etcd} in ${rel(dirname(dirname(wanted.kubectl)))}`);
    } else {
      p.note(`first run: building kubernetes ${wanted.versions.kubernetes} and etcd ${wanted.versions.etcd} from the Go module proxy into ${rel(dirname(dirname(wanted.kubectl)))}`);
      p.note('once per clone: about 15 minutes on two cores with an empty Go build cache, under a minute with a warm one');
    }
    const build = p.lines('build: ');
    const binaries = await ensureBinaries({ progress: build });
    build.end();
    const kubectlDir = dirname(binaries.kubectl);

    // 2. Control plane.
    p.step('a local control plane (etcd + kube-apiserver on 127.0.0.1)');
    state.clusterDir = join(demoDir, 'cluster');
    writeState();
    plane = await startControlPlane({ dir: state.clusterDir, binaries, log: (line) => p.note(line), watchParentPid: process.pid });
    state.kubeconfigPath = plane.kubeconfigPath;
    writeState();
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

    // 3. Backend.
    p.step('the reference backend with its embedded MQTT broker');
    const [apiPort, brokerPort, healthPort, metricsPort] = (await freeLoopbackPorts(4)) as [number, number, number, number];
    const backendDir = join(demoDir, 'backend');
    const backendArgs = ['--data-dir', backendDir, '--port', String(apiPort), '--broker-port', String(brokerPort)];
    p.note(`as: npm run backend -- ${backendArgs.map((a) => quote(a === backendDir ? rel(a) : a)).join(' ')}`);
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

    // 4. Install.
    p.step('the install: kubectl apply -f dist/manifests.yaml');
    await kubectl(['apply', '-f', 'dist/manifests.yaml'], { cwd: repoRoot });
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/workerpools.workers.spacelift.io', 'crd/workers.workers.spacelift.io']);
    p.note('The Deployment above never gets a Pod here (no scheduler, no kubelet); the demo runs the controller as a local process instead.');

    // 5. Controller.
    p.step('the controller, as a local process (npm start)');
    const metrics = existsSync(join(repoRoot, 'src', 'controller', 'metrics-server.ts'));
    const controllerArgs = [
      `--health-probe-bind-address=127.0.0.1:${healthPort}`,
      ...(metrics ? [`--metrics-bind-address=127.0.0.1:${metricsPort}`, '--metrics-secure=false'] : []),
    ];
    const controllerLog = join(demoDir, 'controller.log');
    p.note(`as: KUBECONFIG=${rel(plane.kubeconfigPath)} npm start -- ${controllerArgs.join(' ')}`);
    p.note(`its log: ${rel(controllerLog)}`);
    controller = startChild('controller', process.execPath, ['--import', 'tsx', join('src', 'controller', 'cli', 'main.ts'), ...controllerArgs], {
      cwd: repoRoot,
      env: { ...process.env, KUBECONFIG: plane.kubeconfigPath },
      logFile: controllerLog,
    });
    state.controllerPid = controller.pid;
    writeState();
    signalGroup(watchdogPid, 'SIGKILL');
    watchdogPid = spawnWatchdog(process.pid, [controller.pid, backend.pid], join(demoDir, 'watchdog.log')).pid;
    await waitForHttpOk(controller, `http://127.0.0.1:${healthPort}/readyz`, 90_000);
    p.note(`ready: http://127.0.0.1:${healthPort}/readyz answers ok (its caches are synced)`);

    // 6. The pool.
    p.step(`a pool in the backend, its Secret, and a WorkerPool with poolSize ${POOL_SIZE}`);
    const created = await api<{ id: string; token: string; privateKey: string }>('POST', '/api/pools', { name: POOL });
    writeFileSync(join(demoDir, 'worker-pool.config'), created.token, { mode: 0o600 });
    writeFileSync(join(demoDir, 'key.pem'), decodeSecretPrivateKey(created.privateKey), { mode: 0o600 });
    p.note(`backend pool ${created.id}: its token is in worker-pool.config and its private key in key.pem (in ${rel(demoDir)}), as a user downloads them`);
    await shell(`kubectl create secret generic ${SECRET} --namespace ${NAMESPACE} --from-literal=token="$(cat worker-pool.config)" --from-literal=privateKey="$(base64 -w 0 < key.pem)"`);
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

    // 7. Runs and the kubelet's part.
    p.step(`two runs: the backend schedules them, the controller creates their Pods`);
    const runIds: string[] = [];
    for (let i = 0; i < 2; i++) {
      const run = await api<{ id: string }>('POST', '/api/runs', { poolId: created.id });
      runIds.push(run.id);
    }
    p.note(`submitted runs ${runIds.join(' and ')} (POST ${apiUrl}/api/runs {"poolId":"${created.id}"})`);
    const podOf = async (runId: string): Promise<string> => {
      const list = JSON.parse(await kubectl(['get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`, '-o', 'json'], { show: false })) as PodList;
      const name = list.items[0]?.metadata.name;
      if (name === undefined) throw new Error(`no pod yet for run ${runId}`);
      return name;
    };
    const pods = await waitUntil('the run Pods', 60_000, async () => Promise.all(runIds.map(podOf)));
    p.note('No kubelet here: the demo plays it and writes the status a kubelet would (all containers started)');
    writeFileSync(join(demoDir, 'pod-running.json'), JSON.stringify({ status: runningPodStatus() }));
    for (const pod of pods) await kubectl(['patch', 'pod', pod, '--subresource=status', '--type=merge', '--patch-file=pod-running.json']);
    await waitUntil('both runs to be running in the backend', 60_000, async () => {
      const runs = await Promise.all(runIds.map((id) => api<RunView>('GET', `/api/runs/${id}`)));
      return runs.every((r) => r.state === 'running') ? true : undefined;
    });
    await kubectl(['get', 'workers']);
    for (const runId of runIds) await kubectl(['get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`]);
    p.note(`Playing the kubelet again: run ${runIds[0]} ends with exit code 0, run ${runIds[1]} with exit code 1`);
    writeFileSync(join(demoDir, 'pod-succeeded.json'), JSON.stringify({ status: endedPodStatus(0) }));
    writeFileSync(join(demoDir, 'pod-failed.json'), JSON.stringify({ status: endedPodStatus(1) }));
    await kubectl(['patch', 'pod', pods[0] as string, '--subresource=status', '--type=merge', '--patch-file=pod-succeeded.json']);
    await kubectl(['patch', 'pod', pods[1] as string, '--subresource=status', '--type=merge', '--patch-file=pod-failed.json']);
    const ended = await waitUntil('both runs to end in the backend', 60_000, async () => {
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
    p.note('the successful run\'s Pod is deleted when it ends; the failed one is kept (failedPodsHistoryLimit, 5 per worker by default)');
    const failedRun = ended[1] as RunView;
    const failedWorker = workers.items.find((w) => w.spec.workerId === failedRun.workerId);
    if (failedWorker !== undefined) {
      const workerName = failedWorker.metadata.name;
      await waitUntil(`the RunFailed event of worker ${workerName}`, 30_000, async () => {
        const events = JSON.parse(await kubectl(['events', '--namespace', NAMESPACE, `workers/${workerName}`, '-o', 'json'], { show: false })) as { items: { reason?: string }[] };
        return events.items.some((e) => e.reason === 'RunFailed') ? true : undefined;
      });
      await kubectl(['events', '--namespace', NAMESPACE, `workers/${workerName}`]);
    }
    if (metrics) {
      const url = `http://127.0.0.1:${metricsPort}/metrics`;
      const res = await httpGet(url);
      if (res.status !== 200) throw new StepFailed(`GET ${url}: ${res.status} ${res.body.slice(0, 200)}`);
      p.note(`a sample of the controller's metrics (GET ${url}: the spacelift_ series, histogram buckets left out):`);
      p.output(res.body.split('\n').filter((l) => l.startsWith('spacelift_') && !/_bucket\{/.test(l)).slice(0, 20).join('\n'));
    }

    // 9. Stop or keep.
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
          `  kubectl scale workerpools ${POOL} --replicas=3`,
          '',
          `Backend API: ${apiUrl} (CA ${backendRel}/ca.pem, admin token file ${backendRel}/admin-token). Submit a run:`,
          `  curl --cacert ${backendRel}/ca.pem -H "Authorization: Bearer $(cat ${backendRel}/admin-token)" -d '{"poolId":"${created.id}"}' ${apiUrl}/api/runs`,
          '  (its Pod stays Pending: no kubelet; write its status as the demo did, e.g. with',
          `   kubectl patch pod <name> --subresource=status --type=merge --patch-file=${rel(join(demoDir, 'pod-running.json'))})`,
          `Logs: ${rel(join(demoDir, 'controller.log'))}, ${rel(join(demoDir, 'backend.log'))}, ${rel(state.clusterDir)}/kube-apiserver.log`,
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
    p.note('controller, backend and control plane stopped');
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
