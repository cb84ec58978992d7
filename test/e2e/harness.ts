/**
 * End-to-end harness: the shared real cluster (its node runs the run Pods),
 * a reference backend with its TLS broker in this process, listening on the
 * node's bridge address so that pods can reach it, and the controller as a
 * child process (so tests can SIGKILL it), watching only the test's own
 * namespace. Runs use the stand-in launcher and runner images (built by
 * `npm run images`, imported into the node), whose worker runs the shell
 * text the run's environment carries in KWC_STANDIN_SCRIPT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../src/cluster/binaries.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject, type WorkerPoolObject } from '../../src/api/types.js';
import { EVENTS, KubeClient, PODS, SECRETS, type Pod } from '../../src/runtime/k8s-client.js';
import type { BackendOptions } from '../../src/backend/server.js';
import { createPool, startEnv, waitFor, type BrokerKind, type Env, type Pool } from '../integration/backend-harness.js';
import { createTestNamespace, ensureInstalled, kubeconfigPath, kubectlOk, testKubeConfig, testNode } from '../setup/cluster-access.js';

export { waitFor };

export class ControllerProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(args: readonly string[], logFile?: string) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'controller', 'cli', 'main.ts'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, KUBECONFIG: kubeconfigPath() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    const onData = (chunk: Buffer): void => {
      if (logFile !== undefined) appendFileSync(logFile, chunk);
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Log lines parsed as JSON (the controller logs JSON lines by default). */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.lines) {
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record (a stack trace, say)
      }
    }
    return out;
  }

  async waitForLog(what: string, match: (r: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<void> {
    await waitFor(what, () => {
      if (!this.running) throw new Error(`controller exited: ${this.lines.slice(-20).join('\n')}`);
      return this.records().some(match);
    }, timeoutMs);
  }

  /** Sends a signal without waiting (SIGSTOP/SIGCONT freeze and thaw the process). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }
}

export interface E2E {
  readonly env: Env;
  readonly namespace: string;
  readonly client: KubeClient;
  controller: ControllerProcess;
  startController(extraArgs?: readonly string[]): ControllerProcess;
  /** The documented Secret and WorkerPool for a new backend pool. */
  createWorkerPool(name: string, poolSize: number, spec?: Record<string, unknown>, secretData?: SecretData): Promise<Pool>;
  /** Replaces the pool's Secret the way a user would (kubectl apply). */
  writeSecret(name: string, data: Record<string, string>): Promise<void>;
  /** Events about one object, oldest first. */
  eventsFor(kind: string, name: string): Promise<{ type?: string; reason?: string; message?: string; count?: number }[]>;
  pool(name: string): Promise<WorkerPoolObject>;
  workers(): Promise<WorkerObject[]>;
  pods(labelSelector?: string): Promise<Pod[]>;
  workerSecrets(): Promise<number>;
  backendPool(id: string): Promise<{ id: string; pendingRuns: number; workers: { id: string; state: string; drained: boolean }[] }>;
  submitRun(poolId: string, body?: Record<string, unknown>): Promise<string>;
  /** A run of the stand-in images whose worker runs `script` (in the workspace, as PID 1). */
  submitScriptRun(poolId: string, script: string, body?: Record<string, unknown>): Promise<string>;
  run(id: string): Promise<RunView>;
  /** Ends a run started with {@link WAITING_SCRIPT}: its worker exits with `exitCode`. */
  endRun(podName: string, exitCode: number): Promise<void>;
  close(): Promise<void>;
}

export interface RunView {
  id: string;
  state: string;
  workerId: string | null;
  reason: string | null;
  exitCode?: number | null;
  createdAt?: string;
  updatedAt?: string;
}

/**
 * A worker script that runs until the test ends it with `endRun` (or the Pod
 * is stopped: it leaves promptly on SIGTERM, which PID 1 would otherwise ignore).
 */
export const WAITING_SCRIPT =
  'trap "echo stopped by TERM; exit 143" TERM; echo started; until [ -e /opt/spacelift/workspace/ended ]; do sleep 0.2 & wait $!; done; exit "$(cat /opt/spacelift/workspace/ended)"';

/**
 * The stand-in images when there is a node; without one (KWC_NO_NODE=1) Pods
 * never start, and names that no node will pull do as well.
 */
export function runImages(): { runnerImage: string; launcherImage: string } {
  const node = testNode();
  return node === null
    ? { runnerImage: 'registry.example.com/runner:1.0', launcherImage: 'registry.example.com/launcher:1.0' }
    : { runnerImage: node.images.standinRunner.ref, launcherImage: node.images.standinLauncher.ref };
}

/** The Secret's content for a backend pool; null for no Secret at all. Default: the documented one. */
export type SecretData = (pool: Pool) => Record<string, string> | null;

export const documentedSecret: SecretData = (pool) => ({ token: pool.tokenText, privateKey: pool.privateKeyB64 });

export const CONTROLLER_TEST_FLAGS = ['--health-probe-bind-address=0', '--metrics-bind-address=0', '--log-level=debug'];

/** The backend of an e2e run: its broker (default the embedded one) and options beyond the harness's. */
export interface E2EBackend {
  readonly broker?: BrokerKind;
  readonly options?: Partial<BackendOptions>;
}

export async function startE2E(prefix: string, controllerArgs: readonly string[] = [], backend: E2EBackend = {}): Promise<E2E> {
  await ensureInstalled();
  const namespace = await createTestNamespace(prefix);
  const node = testNode();
  // On the bridge address (when there is a node), where pods, the in-cluster controller included, reach it.
  const env = await startEnv(backend.broker ?? 'embedded', { redeliverMs: 1_000, offlineAfterMs: 20_000, ...(node !== null ? { host: node.address } : {}), ...backend.options });
  const kc = testKubeConfig();
  const client = KubeClient.fromKubeConfig(kc);
  const controllers: ControllerProcess[] = [];
  const e2e: E2E = {
    env,
    namespace,
    client,
    controller: undefined as unknown as ControllerProcess,
    startController(extraArgs = controllerArgs) {
      // Kept after the run, for a failing test's post-mortem.
      const c = new ControllerProcess([...CONTROLLER_TEST_FLAGS, `--namespaces=${namespace}`, ...extraArgs], join(tmpdir(), `kwc-e2e-${namespace}-controller.log`));
      controllers.push(c);
      e2e.controller = c;
      return c;
    },
    async createWorkerPool(name, poolSize, spec = {}, secretData = documentedSecret) {
      const pool = await createPool(env, name);
      const data = secretData(pool);
      if (data !== null) await e2e.writeSecret(`${name}-credentials`, data);
      const manifest = {
        apiVersion: 'workers.spacelift.io/v1beta1',
        kind: 'WorkerPool',
        metadata: { name, namespace },
        spec: {
          poolSize,
          token: { secretKeyRef: { name: `${name}-credentials`, key: 'token' } },
          privateKey: { secretKeyRef: { name: `${name}-credentials`, key: 'privateKey' } },
          ...spec,
        },
      };
      await kubectlOk(['apply', '-f', '-'], { stdin: JSON.stringify(manifest) });
      return pool;
    },
    async writeSecret(name, data) {
      const literals = Object.entries(data).map(([k, v]) => `--from-literal=${k}=${v}`);
      const yaml = await kubectlOk(['create', 'secret', 'generic', name, '-n', namespace, ...literals, '--dry-run=client', '-o', 'yaml']);
      await kubectlOk(['apply', '-f', '-'], { stdin: yaml });
    },
    async eventsFor(kind, name) {
      const list = await client.list(EVENTS, namespace, { fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}` });
      return list.items.sort((a, b) => (a.lastTimestamp ?? '').localeCompare(b.lastTimestamp ?? ''));
    },
    pool: (name) => client.get(WORKERPOOL_REF, namespace, name),
    workers: async () => (await client.list(WORKER_REF, namespace)).items,
    pods: async (labelSelector) => (await client.list(PODS, namespace, { labelSelector })).items,
    workerSecrets: async () => (await client.list(SECRETS, namespace, { labelSelector: 'workers.spacelift.io/worker-credentials' })).items.length,
    async backendPool(id) {
      const res = await env.admin<{ id: string; pendingRuns: number; workers: { id: string; state: string; drained: boolean }[] }>('GET', `/api/pools/${id}`);
      if (res.status !== 200) throw new Error(`GET pool ${id}: ${res.status}`);
      return res.body;
    },
    async submitRun(poolId, body = {}) {
      const res = await env.admin<{ id: string }>('POST', '/api/runs', { poolId, ...body });
      if (res.status !== 201) throw new Error(`POST run: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.id;
    },
    async submitScriptRun(poolId, script, body = {}) {
      const env = { ...((body.env as Record<string, string> | undefined) ?? {}), KWC_STANDIN_SCRIPT: script };
      return e2e.submitRun(poolId, { ...runImages(), ...body, env });
    },
    async run(id) {
      const res = await env.admin<RunView>('GET', `/api/runs/${id}`);
      if (res.status !== 200) throw new Error(`GET run ${id}: ${res.status}`);
      return res.body;
    },
    async endRun(podName, exitCode) {
      await kubectlOk(['exec', '-n', namespace, podName, '-c', 'worker', '--', 'sh', '-c', `echo ${exitCode} > /opt/spacelift/workspace/ended`]);
    },
    async close() {
      for (const c of controllers) await c.kill('SIGKILL');
      writeFileSync(join(tmpdir(), `kwc-e2e-${namespace}-backend.log`), env.logLines.join('\n'));
      await env.close();
    },
  };
  return e2e;
}
