import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureBinaries, type ControlPlaneBinaries, type ControlPlaneVersions } from './binaries.js';
import { renderAdminKubeconfig } from './kubeconfig.js';
import { createControlPlanePki, type ControlPlanePki } from './pki.js';
import { freeLoopbackPorts } from './ports.js';
import { commandLine, isRunning, signalGroup, spawnInOwnGroup, spawnWatchdog, stopGroup, tailOf } from './processes.js';

export interface ControlPlaneOptions {
  /** State directory: certificates, etcd data, logs, kubeconfig. Created if missing. */
  dir: string;
  /** Defaults to the cached binaries, built first if absent. */
  binaries?: ControlPlaneBinaries;
  /** Human-readable progress lines (build progress goes to stderr on its own). */
  log?: (line: string) => void;
  /** Stop the control plane when the process with this pid exits, even by SIGKILL (test runs). */
  watchParentPid?: number;
  /** Remove `dir` on stop (throw-away test clusters). */
  removeDirOnStop?: boolean;
  readyTimeoutMs?: number;
}

/** What is written to `<dir>/state.json` so another process can find and stop it. */
export interface ControlPlaneState {
  server: string;
  kubeconfigPath: string;
  etcdPid: number;
  apiserverPid: number;
  watchdogPid?: number;
  etcdClientUrl: string;
  versions: ControlPlaneVersions;
  binaries: { kubeApiserver: string; etcd: string; kubectl: string };
  startedAt: string;
}

export interface ControlPlane {
  dir: string;
  kubeconfigPath: string;
  server: string;
  kubectlPath: string;
  state: ControlPlaneState;
  stop(): Promise<void>;
  /**
   * For process 'exit' and signal handlers, where nothing asynchronous runs:
   * SIGKILL to both servers. The data is thrown away anyway.
   */
  stopSync(): void;
}

export const STATE_FILE = 'state.json';

// A service-account issuer like a real cluster's, so tokens look as they do in production.
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

type PkiFiles = Record<'ca' | 'servingCert' | 'servingKey' | 'saPub' | 'saKey' | 'adminCert' | 'adminKey', string>;

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
  return files;
}

function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
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

function apiserverArgs(files: PkiFiles, etcdUrl: string, port: number): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--tls-cert-file=${files.servingCert}`,
    `--tls-private-key-file=${files.servingKey}`,
    `--client-ca-file=${files.ca}`,
    `--service-account-key-file=${files.saPub}`,
    `--service-account-signing-key-file=${files.saKey}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--authorization-mode=RBAC',
    // Run pods may add a privileged sidecar by the user's choice (a Docker daemon), as real clusters allow.
    '--allow-privileged=true',
    // Without kube-controller-manager no namespace ever gets its "default"
    // ServiceAccount, and this plugin would refuse every Pod for lacking it.
    '--disable-admission-plugins=ServiceAccount',
    // Flow control adds watches and goroutines that two shared cores do not need.
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
  ];
}

function get(url: string, tls?: { ca: string; cert: string; key: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    };
    const req = tls ? request(url, { ...tls, agent: false, timeout: 5000 }, onResponse)
      : httpRequest(url, { agent: false, timeout: 5000 }, onResponse);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
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

/**
 * Starts etcd and kube-apiserver on free loopback ports with a fresh CA and
 * returns once `/readyz` answers ok. Each runs in its own process group;
 * `stop()` ends both groups (and the watchdog) and waits for them.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? ((): void => undefined);
  const binaries = options.binaries ?? (await ensureBinaries());
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  log(`generating a throw-away CA and certificates in ${dir}`);
  const pki = await createControlPlanePki();
  const files = writePki(dir, pki);
  const tls = { ca: pki.ca.certPem, cert: pki.admin.certPem, key: pki.admin.keyPem };

  // A free port can be taken between the probe and the bind; start again with new ones.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce();
    } catch (error) {
      if (error instanceof StartFailure && error.portTaken && attempt < 4) {
        log(`a port was taken meanwhile; retrying (${attempt})`);
        continue;
      }
      throw error;
    }
  }

  async function startOnce(): Promise<ControlPlane> {
    const [etcdClientPort, etcdPeerPort, apiserverPort] = (await freeLoopbackPorts(3)) as [number, number, number];
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const server = `https://127.0.0.1:${apiserverPort}`;
    const etcdLog = join(dir, 'etcd.log');
    const apiserverLog = join(dir, 'kube-apiserver.log');
    const etcdData = join(dir, 'etcd-data');
    rmSync(etcdData, { recursive: true, force: true });

    log(`starting etcd ${binaries.versions.etcd} on ${etcdUrl}`);
    const etcd = spawnInOwnGroup(binaries.etcd, etcdArgs(etcdData, etcdClientPort, etcdPeerPort), etcdLog);
    const groups = [etcd.pid];
    const stopAll = async (): Promise<void> => {
      for (const pgid of [...groups].reverse()) await stopGroup(pgid);
    };
    try {
      await waitUntil(
        'etcd /health',
        async () => (await get(`${etcdUrl}/health`)).body.includes('"health":"true"'),
        [{ name: 'etcd', pid: etcd.pid, log: etcdLog }],
        options.readyTimeoutMs ?? 60_000,
      );
      log(`starting kube-apiserver ${binaries.versions.kubernetes} on ${server}`);
      const apiserver = spawnInOwnGroup(binaries.kubeApiserver, apiserverArgs(files, etcdUrl, apiserverPort), apiserverLog);
      groups.push(apiserver.pid);
      let watchdogPid: number | undefined;
      if (options.watchParentPid !== undefined) {
        watchdogPid = spawnWatchdog(options.watchParentPid, [apiserver.pid, etcd.pid], join(dir, 'watchdog.log')).pid;
        groups.push(watchdogPid);
      }
      await waitUntil(
        'kube-apiserver /readyz',
        async () => {
          const res = await get(`${server}/readyz`, tls);
          return res.status === 200 && res.body.trim() === 'ok';
        },
        [
          { name: 'etcd', pid: etcd.pid, log: etcdLog },
          { name: 'kube-apiserver', pid: apiserver.pid, log: apiserverLog },
        ],
        options.readyTimeoutMs ?? 180_000,
      );

      const kubeconfigPath = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfigPath,
        renderAdminKubeconfig({ server, caCertPem: pki.ca.certPem, clientCertPem: pki.admin.certPem, clientKeyPem: pki.admin.keyPem }),
        { mode: 0o600 },
      );
      const state: ControlPlaneState = {
        server,
        kubeconfigPath,
        etcdPid: etcd.pid,
        apiserverPid: apiserver.pid,
        ...(watchdogPid !== undefined ? { watchdogPid } : {}),
        etcdClientUrl: etcdUrl,
        versions: binaries.versions,
        binaries: { kubeApiserver: binaries.kubeApiserver, etcd: binaries.etcd, kubectl: binaries.kubectl },
        startedAt: new Date().toISOString(),
      };
      writeFileSync(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
      log(`ready: ${server}`);

      let stopping: Promise<void> | undefined;
      return {
        dir,
        kubeconfigPath,
        server,
        kubectlPath: binaries.kubectl,
        state,
        stop: () => {
          stopping ??= stopAll().then(() => {
            if (options.removeDirOnStop === true) rmSync(dir, { recursive: true, force: true });
          });
          return stopping;
        },
        stopSync: () => {
          // No waiting is possible here, and kube-apiserver whose etcd vanished
          // first never finishes a graceful shutdown: kill both outright. The
          // watchdog is left alone; it exits by itself once its parent has.
          signalGroup(apiserver.pid, 'SIGKILL');
          signalGroup(etcd.pid, 'SIGKILL');
          if (options.removeDirOnStop === true) {
            try {
              rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
            } catch {
              // A dying etcd may still be writing; a leftover temp dir is harmless.
            }
          }
        },
      };
    } catch (error) {
      await stopAll();
      throw error;
    }
  }
}

/** True when the control plane described by `<dir>/state.json` answers `/readyz` with ok. */
export async function controlPlaneReady(dir: string, state: ControlPlaneState): Promise<boolean> {
  if (!isRunning(state.apiserverPid) || !isRunning(state.etcdPid)) return false;
  const files = pkiFiles(dir);
  try {
    const tls = { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.adminCert, 'utf8'), key: readFileSync(files.adminKey, 'utf8') };
    const res = await get(`${state.server}/readyz`, tls);
    return res.status === 200 && res.body.trim() === 'ok';
  } catch {
    return false;
  }
}

/** Stops whatever `<dir>/state.json` names, checking each pid still runs the binary it started. */
export async function stopControlPlaneFromState(state: ControlPlaneState): Promise<void> {
  const owned = (pid: number | undefined, binary: string): pid is number =>
    pid !== undefined && isRunning(pid) && (commandLine(pid)[0] ?? '') === binary;
  if (owned(state.watchdogPid, 'sh')) await stopGroup(state.watchdogPid);
  if (owned(state.apiserverPid, state.binaries.kubeApiserver)) await stopGroup(state.apiserverPid);
  if (owned(state.etcdPid, state.binaries.etcd)) await stopGroup(state.etcdPid);
}

export function readControlPlaneState(dir: string): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ControlPlaneState;
  } catch {
    return undefined;
  }
}
