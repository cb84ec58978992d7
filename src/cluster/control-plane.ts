/**
 * A local Kubernetes cluster: etcd and kube-apiserver, and by default
 * (`node: true`) kube-controller-manager, kube-scheduler and a node
 * (containerd + kubelet, node.ts) whose host changes node-host.ts makes and
 * undoes. `node: false` is the control plane alone, for machines that cannot
 * run containers and for the benchmark at sizes no node can hold.
 *
 * Everything started is recorded in `<dir>/state.json`, so another process
 * (`npm run cluster:down`, or the watchdog of a test run that was killed)
 * can stop it in the right order and put the host back.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildImages } from '../images/build.js';
import { ensureBinaries, repoRoot, type ControlPlaneBinaries, type ControlPlaneVersions } from './binaries.js';
import { runCommand } from './commands.js';
import { ensureHostPieces, isRoot, missingPieces, missingPiecesMessage, NODE_PIECES } from './host-packages.js';
import { renderAdminKubeconfig } from './kubeconfig.js';
import {
  applyNftTable,
  claimNode,
  createBridge,
  createCgroupRoot,
  KUBERNETES_SERVICE_IP,
  NODE_NAME,
  recordNodePids,
  releaseNode,
  SERVICE_CIDR,
  type NodeNetwork,
} from './node-host.js';
import { nodePaths, startNode, stopNodeProcesses } from './node.js';
import { APISERVER_KUBELET_CLIENT, createControlPlanePki, type ControlPlanePki, type IssuedCertificate } from './pki.js';
import { freeLoopbackPorts } from './ports.js';
import { commandLine, isRunning, signalGroup, spawnInOwnGroup, spawnTeardownWatchdog, spawnWatchdog, stopGroupSync, tailOf } from './processes.js';

export interface ControlPlaneOptions {
  /** State directory: certificates, etcd data, logs, kubeconfig, the node's files. Created if missing. */
  dir: string;
  /** Defaults to the cached binaries, built first if absent. */
  binaries?: ControlPlaneBinaries;
  /** Human-readable progress lines (build progress goes to stderr on its own). */
  log?: (line: string) => void;
  /** Stop the cluster when the process with this pid exits, even by SIGKILL (test runs). */
  watchParentPid?: number;
  /** Remove `dir` on stop (throw-away test clusters). */
  removeDirOnStop?: boolean;
  readyTimeoutMs?: number;
  /**
   * Also run kube-controller-manager, kube-scheduler and a node (containerd +
   * kubelet). Needs root; host pieces are installed on first use. Default false.
   */
  node?: boolean;
  /** OCI archives imported into the node's containerd besides the pause image (npm run images). */
  images?: readonly string[];
}

/** The node's part of the state file. */
export interface NodeState {
  name: string;
  index: number;
  bridge: string;
  cidr: string;
  /** The bridge address: where pods reach the host, the API server and the kubelet. */
  address: string;
  /** `<dir>/node` */
  dir: string;
  containerdSocket: string;
  containerdPid?: number;
  kubeletPid?: number;
  kubeletPort: number;
  pauseImage: string;
}

/** What is written to `<dir>/state.json` so another process can find and stop it. */
export interface ControlPlaneState {
  dir: string;
  server: string;
  kubeconfigPath: string;
  etcdPid: number;
  apiserverPid: number;
  controllerManagerPid?: number;
  schedulerPid?: number;
  watchdogPid?: number;
  etcdClientUrl: string;
  versions: ControlPlaneVersions;
  binaries: { kubeApiserver: string; kubeControllerManager: string; kubeScheduler: string; kubelet: string; etcd: string; kubectl: string; crictl: string };
  node?: NodeState;
  startedAt: string;
}

export interface ControlPlane {
  dir: string;
  kubeconfigPath: string;
  server: string;
  kubectlPath: string;
  state: ControlPlaneState;
  /**
   * Kills kube-apiserver (SIGKILL, as a crash would) and starts it again with
   * the same flags; resolves once it is ready. For fault tests (the soak).
   */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
  /**
   * For process 'exit' and signal handlers, where nothing asynchronous runs:
   * the same teardown, synchronously.
   */
  stopSync(): void;
}

export const STATE_FILE = 'state.json';

/** Where `npm run cluster:up` keeps its cluster: `$KWC_CLUSTER_DIR`, default `.cache/cluster`. */
export function defaultClusterDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KWC_CLUSTER_DIR ?? join(repoRoot, '.cache', 'cluster');
}

// A service-account issuer like a real cluster's, so tokens look as they do in production.
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

type PkiFiles = Record<'ca' | 'servingCert' | 'servingKey' | 'saPub' | 'saKey' | 'adminCert' | 'adminKey' | 'kubeletClientCert' | 'kubeletClientKey', string>;

function pkiFiles(dir: string): PkiFiles {
  const pkiDir = join(dir, 'pki');
  return {
    ca: join(pkiDir, 'ca.crt'),
    servingCert: join(pkiDir, 'apiserver.crt'),
    servingKey: join(pkiDir, 'apiserver.key'),
    saPub: join(pkiDir, 'sa.pub'),
    saKey: join(pkiDir, 'sa.key'),
    adminCert: join(pkiDir, 'admin.crt'),
    adminKey: join(pkiDir, 'admin.key'),
    kubeletClientCert: join(pkiDir, 'apiserver-kubelet-client.crt'),
    kubeletClientKey: join(pkiDir, 'apiserver-kubelet-client.key'),
  };
}

function writePki(dir: string, pki: ControlPlanePki): PkiFiles {
  const files = pkiFiles(dir);
  mkdirSync(join(dir, 'pki'), { recursive: true, mode: 0o700 });
  writeFileSync(files.ca, pki.ca.certPem);
  writeFileSync(files.servingCert, pki.serving.certPem);
  writeFileSync(files.servingKey, pki.serving.keyPem, { mode: 0o600 });
  writeFileSync(files.saPub, pki.serviceAccount.publicKeyPem);
  writeFileSync(files.saKey, pki.serviceAccount.privateKeyPem, { mode: 0o600 });
  writeFileSync(files.adminCert, pki.admin.certPem);
  writeFileSync(files.adminKey, pki.admin.keyPem, { mode: 0o600 });
  if (pki.components !== undefined) {
    writeFileSync(files.kubeletClientCert, pki.components.apiserverKubeletClient.certPem);
    writeFileSync(files.kubeletClientKey, pki.components.apiserverKubeletClient.keyPem, { mode: 0o600 });
  }
  return files;
}

export function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=kwc',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=kwc=${peer}`,
    // Test data is thrown away; fsync would make every API write wait for the disk.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

/**
 * kube-apiserver's flags. With a node it listens on the bridge address (pods
 * cannot reach loopback; see node-host.ts), authorizes with Node + RBAC,
 * restricts kubelets with NodeRestriction and reaches them with its own
 * client certificate, verifying theirs.
 */
export function apiserverArgs(files: PkiFiles, etcdUrl: string, address: string, port: number, withNode: boolean): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--secure-port=${port}`,
    `--tls-cert-file=${files.servingCert}`,
    `--tls-private-key-file=${files.servingKey}`,
    `--client-ca-file=${files.ca}`,
    `--service-account-key-file=${files.saPub}`,
    `--service-account-signing-key-file=${files.saKey}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    // Run pods may add a privileged sidecar by the user's choice (a Docker daemon), as real clusters allow.
    '--allow-privileged=true',
    ...(withNode
      ? [
          '--authorization-mode=Node,RBAC',
          '--enable-admission-plugins=NodeRestriction',
          `--kubelet-client-certificate=${files.kubeletClientCert}`,
          `--kubelet-client-key=${files.kubeletClientKey}`,
          `--kubelet-certificate-authority=${files.ca}`,
          '--kubelet-preferred-address-types=InternalIP',
        ]
      : [
          '--authorization-mode=RBAC',
          // Without kube-controller-manager no namespace ever gets its "default"
          // ServiceAccount, and this plugin would refuse every Pod for lacking it.
          '--disable-admission-plugins=ServiceAccount',
        ]),
    // Flow control adds watches and goroutines that two shared cores do not need.
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
  ];
}

/** kube-controller-manager: every default controller (garbage collector, namespaces, node lifecycle, service accounts and their tokens, Deployments...). */
export function controllerManagerArgs(kubeconfig: string, files: PkiFiles, port: number): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--service-account-private-key-file=${files.saKey}`,
    `--root-ca-file=${files.ca}`,
    // Each controller acts as its own ServiceAccount, as on a kubeadm cluster.
    '--use-service-account-credentials=true',
    '--cluster-name=kwc',
    '--leader-elect=false',
    '--profiling=false',
    '--v=0',
  ];
}

export function schedulerArgs(kubeconfig: string, port: number): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    '--leader-elect=false',
    '--profiling=false',
    '--v=0',
  ];
}

interface Tls {
  ca: string;
  cert: string;
  key: string;
}

function call(url: string, options: { tls?: Tls; insecure?: boolean; method?: string; body?: unknown } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    };
    const data = options.body === undefined ? undefined : JSON.stringify(options.body);
    const common = {
      agent: false as const,
      timeout: 5000,
      method: options.method ?? 'GET',
      headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) },
    };
    const req = url.startsWith('https:')
      ? request(url, { ...common, ...(options.tls ?? {}), rejectUnauthorized: options.insecure !== true }, onResponse)
      : httpRequest(url, common, onResponse);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

class StartFailure extends Error {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  processes: { name: string; pid: number; log: string }[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of processes) {
      if (!isRunning(p.pid)) {
        const tail = tailOf(p.log);
        throw new StartFailure(`${p.name} exited while waiting for ${what}; last lines of ${p.log}:\n${tail}`, /address already in use/.test(tail));
      }
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new StartFailure(`timed out after ${timeoutMs} ms waiting for ${what}; logs: ${processes.map((p) => p.log).join(', ')}`, false);
    }
    await sleep(200);
  }
}

function writeState(dir: string, state: ControlPlaneState): void {
  writeFileSync(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

function componentKubeconfig(path: string, server: string, caPem: string, cert: IssuedCertificate, user: string): string {
  writeFileSync(path, renderAdminKubeconfig({ server, caCertPem: caPem, clientCertPem: cert.certPem, clientKeyPem: cert.keyPem, user }), { mode: 0o600 });
  return path;
}

/**
 * Checks that nothing stands in the node's way before anything on the host
 * is changed: root, and the host pieces (installed now when missing). Without
 * root the error names everything missing and how to install it.
 */
export async function nodePreflight(log: (line: string) => void): Promise<void> {
  const alternative = 'Or start the control plane alone (no Pods run): npm run cluster:up -- --no-node, or KWC_NO_NODE=1 npm test.';
  if (!isRoot()) {
    const missing = missingPieces(NODE_PIECES);
    const lines = ['the local node (containerd and a kubelet) needs root: it creates a bridge, network namespaces, mounts and cgroups.'];
    if (missing.length > 0) lines.push(missingPiecesMessage(missing, 'It also'));
    lines.push(`Run as root, or on a machine where you can. ${alternative}`);
    throw new Error(lines.join('\n'));
  }
  await ensureHostPieces(NODE_PIECES, { what: 'the local node', alternative, log });
}

/**
 * Starts etcd and kube-apiserver on free ports with a fresh CA (and with
 * `node`, the controller manager, the scheduler and the node) and returns
 * once the API server is ready (and the Node is Ready and schedulable).
 * `stop()` stops everything and restores the host.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? ((): void => undefined);
  const withNode = options.node === true;
  if (withNode) await nodePreflight(log);
  const binaries = options.binaries ?? (await ensureBinaries());
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pause = withNode ? (await buildImages(['pause'], { log })).pause : undefined;

  let net: NodeNetwork | undefined;
  if (withNode) {
    net = claimNode(dir, (n) => nodePaths(dir, n).containerdSocket, log);
    try {
      createBridge(net);
      createCgroupRoot(net.cgroup);
    } catch (error) {
      releaseNode({ index: net.index, dir, containerdSocket: nodePaths(dir, net).containerdSocket, pids: [] }, log);
      throw error;
    }
  }
  const address = net?.gateway ?? '127.0.0.1';

  log(`generating a throw-away CA and certificates in ${dir}`);
  const pki = await createControlPlanePki(net === undefined ? {} : { serverIps: [net.gateway, KUBERNETES_SERVICE_IP], node: { name: NODE_NAME, ip: net.gateway } });
  const files = writePki(dir, pki);
  const tls = { ca: pki.ca.certPem, cert: pki.admin.certPem, key: pki.admin.keyPem };

  let restartApiServer = async (): Promise<void> => {
    throw new Error('kube-apiserver is not running');
  };

  // A free port can be taken between the probe and the bind; start again with new ones.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      if (error instanceof StartFailure && error.portTaken && attempt < 4) {
        log(`a port was taken meanwhile; retrying (${attempt})`);
        continue;
      }
      if (net !== undefined) releaseNode({ index: net.index, dir, containerdSocket: nodePaths(dir, net).containerdSocket, pids: [] }, log);
      throw error;
    }
  }

  async function startOnce(): Promise<ControlPlane> {
    const [etcdClientPort, etcdPeerPort, cmPort, schedulerPort, healthzPort] = (await freeLoopbackPorts(5)) as [number, number, number, number, number];
    const [apiserverPort, kubeletPort] = (await freeLoopbackPorts(2, address)) as [number, number];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const server = `https://${address}:${apiserverPort}`;
    const logOf = (name: string): string => join(dir, `${name}.log`);
    const etcdData = join(dir, 'etcd-data');
    rmSync(etcdData, { recursive: true, force: true });

    log(`starting etcd ${binaries.versions.etcd} on ${etcdUrl}`);
    const etcd = spawnInOwnGroup(binaries.etcd, etcdArgs(etcdData, etcdClientPort, etcdPeerPort), logOf('etcd'));
    const kubeconfigPath = join(dir, 'kubeconfig');
    const state: ControlPlaneState = {
      dir,
      server,
      kubeconfigPath,
      etcdPid: etcd.pid,
      apiserverPid: 0,
      etcdClientUrl: etcdUrl,
      versions: binaries.versions,
      binaries: {
        kubeApiserver: binaries.kubeApiserver,
        kubeControllerManager: binaries.kubeControllerManager,
        kubeScheduler: binaries.kubeScheduler,
        kubelet: binaries.kubelet,
        etcd: binaries.etcd,
        kubectl: binaries.kubectl,
        crictl: binaries.crictl,
      },
      startedAt: new Date().toISOString(),
    };
    writeState(dir, state);
    try {
      await waitUntil(
        'etcd /health',
        async () => (await call(`${etcdUrl}/health`)).body.includes('"health":"true"'),
        [{ name: 'etcd', pid: etcd.pid, log: logOf('etcd') }],
        options.readyTimeoutMs ?? 60_000,
      );
      log(`starting kube-apiserver ${binaries.versions.kubernetes} on ${server}`);
      const apiserverCommand = apiserverArgs(files, etcdUrl, address, apiserverPort, withNode);
      const apiserver = spawnInOwnGroup(binaries.kubeApiserver, apiserverCommand, logOf('kube-apiserver'));
      state.apiserverPid = apiserver.pid;
      writeState(dir, state);
      if (options.watchParentPid !== undefined) {
        state.watchdogPid = withNode
          ? spawnTeardownWatchdog(options.watchParentPid, downCommand(dir, options.removeDirOnStop === true), repoRoot, logOf('watchdog')).pid
          : spawnWatchdog(options.watchParentPid, [apiserver.pid, etcd.pid], logOf('watchdog')).pid;
        writeState(dir, state);
      }
      const apiserverReady = (pid: number): Promise<void> =>
        waitUntil(
          'kube-apiserver /readyz',
          async () => {
            const res = await call(`${server}/readyz`, { tls });
            return res.status === 200 && res.body.trim() === 'ok';
          },
          [
            { name: 'etcd', pid: etcd.pid, log: logOf('etcd') },
            { name: 'kube-apiserver', pid, log: logOf('kube-apiserver') },
          ],
          options.readyTimeoutMs ?? 180_000,
        );
      await apiserverReady(apiserver.pid);
      restartApiServer = async () => {
        signalGroup(state.apiserverPid, 'SIGKILL');
        while (isRunning(state.apiserverPid)) await sleep(50);
        // The killed process's listener can outlive it for a moment on a loaded
        // machine (seen in a soak at load 20: "bind: address already in use").
        for (let attempt = 1; ; attempt++) {
          const again = spawnInOwnGroup(binaries.kubeApiserver, apiserverCommand, logOf('kube-apiserver'));
          state.apiserverPid = again.pid;
          writeState(dir, state);
          try {
            await apiserverReady(again.pid);
            return;
          } catch (error) {
            if (!(error instanceof StartFailure && error.portTaken) || attempt >= 20) throw error;
            await sleep(500);
          }
        }
      };
      writeFileSync(
        kubeconfigPath,
        renderAdminKubeconfig({ server, caCertPem: pki.ca.certPem, clientCertPem: pki.admin.certPem, clientKeyPem: pki.admin.keyPem }),
        { mode: 0o600 },
      );

      if (net !== undefined && pki.components !== undefined && pause !== undefined) {
        const components = pki.components;
        applyNftTable(net, apiserverPort);
        // The API server's own identity towards kubelets gets exactly the built-in role made for it.
        const binding = await call(`${server}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings`, {
          tls,
          method: 'POST',
          body: {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: 'kwc:apiserver-kubelet-client' },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
            subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: APISERVER_KUBELET_CLIENT }],
          },
        });
        if (binding.status !== 201) throw new Error(`creating the ClusterRoleBinding for ${APISERVER_KUBELET_CLIENT}: ${binding.status} ${binding.body}`);

        log(`starting kube-controller-manager and kube-scheduler ${binaries.versions.kubernetes}`);
        const cmKubeconfig = componentKubeconfig(join(dir, 'controller-manager.kubeconfig'), server, pki.ca.certPem, components.controllerManager, 'system:kube-controller-manager');
        const cm = spawnInOwnGroup(binaries.kubeControllerManager, controllerManagerArgs(cmKubeconfig, files, cmPort), logOf('kube-controller-manager'));
        state.controllerManagerPid = cm.pid;
        const schedKubeconfig = componentKubeconfig(join(dir, 'scheduler.kubeconfig'), server, pki.ca.certPem, components.scheduler, 'system:kube-scheduler');
        const scheduler = spawnInOwnGroup(binaries.kubeScheduler, schedulerArgs(schedKubeconfig, schedulerPort), logOf('kube-scheduler'));
        state.schedulerPid = scheduler.pid;
        const paths = nodePaths(dir, net);
        state.node = {
          name: NODE_NAME,
          index: net.index,
          bridge: net.bridge,
          cidr: net.cidr,
          address: net.gateway,
          dir: paths.dir,
          containerdSocket: paths.containerdSocket,
          kubeletPort,
          pauseImage: pause.ref,
        };
        writeState(dir, state);
        for (const [name, pid, port] of [['kube-controller-manager', cm.pid, cmPort], ['kube-scheduler', scheduler.pid, schedulerPort]] as const) {
          await waitUntil(
            `${name} /healthz`,
            async () => (await call(`https://127.0.0.1:${port}/healthz`, { insecure: true })).status === 200,
            [{ name, pid, log: logOf(name) }],
            60_000,
          );
        }

        const node = await startNode({
          clusterDir: dir,
          net,
          kubeletBinary: binaries.kubelet,
          server,
          caPem: pki.ca.certPem,
          kubeletClient: components.kubeletClient,
          kubeletServing: components.kubeletServing,
          ports: { port: kubeletPort, healthzPort },
          sandboxImage: { ref: pause.ref, archive: pause.archive },
          images: options.images ?? [],
          log,
        });
        state.node.containerdPid = node.containerdPid;
        state.node.kubeletPid = node.kubeletPid;
        writeState(dir, state);
        recordNodePids(net.index, [node.containerdPid, node.kubeletPid]);

        await waitUntil(
          `node ${NODE_NAME} to be Ready and schedulable`,
          async () => {
            const res = await call(`${server}/api/v1/nodes/${NODE_NAME}`, { tls });
            if (res.status !== 200) return false;
            const n = JSON.parse(res.body) as { spec?: { taints?: { key: string }[] }; status?: { conditions?: { type: string; status: string }[] } };
            const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
            return ready && (n.spec?.taints ?? []).length === 0;
          },
          [
            { name: 'kubelet', pid: node.kubeletPid, log: node.paths.kubeletLog },
            { name: 'kube-controller-manager', pid: cm.pid, log: logOf('kube-controller-manager') },
          ],
          120_000,
        );
        // Pods are refused until their namespace's ServiceAccount exists; the controller manager makes it within moments.
        await waitUntil(
          'the default ServiceAccount',
          async () => (await call(`${server}/api/v1/namespaces/default/serviceaccounts/default`, { tls })).status === 200,
          [{ name: 'kube-controller-manager', pid: cm.pid, log: logOf('kube-controller-manager') }],
          60_000,
        );
      }

      writeState(dir, state);
      log(net === undefined ? `ready: ${server}` : `ready: ${server}, node ${NODE_NAME} (pods on ${net.cidr}, bridge ${net.bridge})`);
      return handle(state, binaries.kubectl, options, log, restartApiServer);
    } catch (error) {
      // The processes only: the bridge and the node's claim stay for a retry, and go below otherwise.
      teardown(state, { log, releaseHost: false });
      throw error;
    }
  }
}

/** `cluster:down` for the cluster in `dir`, as the watchdog and stop() run it. */
function downCommand(dir: string, removeDir: boolean): string[] {
  return [process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cluster', 'cli.ts'), 'down', `--dir=${dir}`, ...(removeDir ? ['--remove-dir'] : [])];
}

function handle(
  state: ControlPlaneState,
  kubectlPath: string,
  options: ControlPlaneOptions,
  log: (line: string) => void,
  restartApiServer: () => Promise<void>,
): ControlPlane {
  let stopped = false;
  const removeDir = options.removeDirOnStop === true;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    teardown(state, { log });
    if (removeDir) {
      try {
        rmSync(state.dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // A dying etcd may still be writing; a leftover temp dir is harmless.
      }
    }
  };
  return {
    dir: state.dir,
    kubeconfigPath: state.kubeconfigPath,
    server: state.server,
    kubectlPath,
    state,
    restartApiServer,
    // The teardown blocks while it waits for processes to exit; in a child
    // process it leaves this one's event loop free (a test runner's workers
    // must hear from it meanwhile).
    stop: async () => {
      if (stopped) return;
      const [file, ...args] = downCommand(state.dir, removeDir) as [string, ...string[]];
      const res = await runCommand(file, args, { cwd: repoRoot }).catch((error: Error) => ({ code: -1, stdout: '', stderr: error.message }));
      if (res.code === 0) {
        stopped = true;
        return;
      }
      log(`cluster:down failed (${res.stderr.trim()}); stopping from here`);
      stopSync();
    },
    stopSync,
  };
}

/** True when the control plane described by `<dir>/state.json` answers `/readyz` with ok (and its node processes run). */
export async function controlPlaneReady(dir: string, state: ControlPlaneState): Promise<boolean> {
  if (!isRunning(state.apiserverPid) || !isRunning(state.etcdPid)) return false;
  if (state.node !== undefined && !(state.node.kubeletPid !== undefined && isRunning(state.node.kubeletPid) && state.node.containerdPid !== undefined && isRunning(state.node.containerdPid))) return false;
  const files = pkiFiles(dir);
  try {
    const tls = { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.adminCert, 'utf8'), key: readFileSync(files.adminKey, 'utf8') };
    const res = await call(`${state.server}/readyz`, { tls });
    return res.status === 200 && res.body.trim() === 'ok';
  } catch {
    return false;
  }
}

/**
 * Stops whatever the state names, checking each pid still runs the binary it
 * started, in the order that leaves nothing behind: the watchdog; the
 * scheduler and controller manager (nothing is rescheduled or recreated);
 * the node's processes (kubelet, pod sandboxes through the CRI, containerd);
 * the API server and etcd; then the node's host leftovers, and the host
 * settings when it is the last node. Synchronous, so it also works in exit
 * handlers.
 */
export function teardown(state: ControlPlaneState, options: { log?: (line: string) => void; releaseHost?: boolean } = {}): void {
  const log = options.log ?? ((line: string): void => void process.stderr.write(`[cluster] ${line}\n`));
  const owned = (pid: number | undefined, binary: string): pid is number => {
    if (pid === undefined || pid <= 0 || !isRunning(pid)) return false;
    const argv0 = commandLine(pid)[0] ?? '';
    return argv0 === binary || argv0.endsWith(`/${binary}`);
  };
  if (owned(state.watchdogPid, 'sh') && state.watchdogPid !== process.pid) signalGroup(state.watchdogPid, 'SIGKILL');
  if (owned(state.schedulerPid, state.binaries.kubeScheduler)) stopGroupSync(state.schedulerPid);
  if (owned(state.controllerManagerPid, state.binaries.kubeControllerManager)) stopGroupSync(state.controllerManagerPid);
  const node = state.node;
  if (node !== undefined) {
    stopNodeProcesses(
      node,
      state.binaries.crictl,
      (pid): pid is number => owned(pid, pid === node.kubeletPid ? state.binaries.kubelet : 'containerd'),
      log,
    );
  }
  // kube-apiserver whose etcd vanished first never finishes a graceful shutdown: it goes first,
  // and before the bridge its address is on.
  if (owned(state.apiserverPid, state.binaries.kubeApiserver)) stopGroupSync(state.apiserverPid);
  if (owned(state.etcdPid, state.binaries.etcd)) stopGroupSync(state.etcdPid);
  if (node !== undefined && options.releaseHost !== false) releaseNode({ index: node.index, dir: state.dir, containerdSocket: node.containerdSocket, pids: [] }, log);
}

/** Stops whatever `<dir>/state.json` names (see {@link teardown}). */
export async function stopControlPlaneFromState(state: ControlPlaneState): Promise<void> {
  teardown(state);
}

export function readControlPlaneState(dir: string): ControlPlaneState | undefined {
  try {
    const state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ControlPlaneState;
    // State files of older versions have no dir.
    return existsSync(dir) ? { ...state, dir: state.dir ?? dir } : state;
  } catch {
    return undefined;
  }
}
