/**
 * `npm run cluster:up [-- --no-node]` / `cluster:down` / `cluster:status`: a
 * local cluster that outlives the command: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and a node (containerd + kubelet),
 * or with `--no-node` the first two alone. Progress goes to stderr; stdout
 * carries only the `export KUBECONFIG=...` line, so
 * `eval "$(npm run -s cluster:up)"` works.
 *
 * `down [--dir=<dir>] [--remove-dir]` is also what a test run's watchdog runs
 * when the run was killed before it could stop its cluster.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBinaries } from './binaries.js';
import { runCommand } from './commands.js';
import { controlPlaneReady, defaultClusterDir, nodePreflight, readControlPlaneState, startControlPlane, teardown } from './control-plane.js';
import { withDirectoryLock } from './lock.js';
import { ctrArgs } from './node.js';
import { isRunning } from './processes.js';

const say = (line: string): void => {
  process.stderr.write(`[cluster] ${line}\n`);
};

const USAGE = `usage: npm run cluster:up [-- --no-node]   start the local cluster (--no-node: control plane only, no Pods run)
       npm run cluster:down                 stop it and restore the host
       npm run cluster:status               show each part
State lives in $KWC_CLUSTER_DIR (default .cache/cluster).
`;

async function up(dir: string, noNode: boolean): Promise<void> {
  // Before anything is built, created or changed: root, and the host pieces (installed now when missing).
  if (!noNode) await nodePreflight(say);
  const binaries = await ensureBinaries();
  await withDirectoryLock(dir, async () => {
    const existing = readControlPlaneState(dir);
    if (existing && (await controlPlaneReady(dir, existing))) {
      say(`already running at ${existing.server}${existing.node ? ` with node ${existing.node.name}` : ' (no node)'} (state in ${dir})`);
      printExport(existing.kubeconfigPath, binaries.kubectl);
      return;
    }
    if (existing) {
      say('found a stopped or half-running cluster; cleaning it up');
      teardown(existing, { log: say });
    }
    cleanDir(dir);
    const plane = await startControlPlane({ dir, binaries, log: say, node: !noNode, ...watchedPid() });
    printExport(plane.kubeconfigPath, binaries.kubectl);
  });
}

// KWC_CLUSTER_WATCH_PID=<pid>: stop the cluster when that process exits, for
// scripts and tests that must not leave one behind if they are killed.
function watchedPid(): { watchParentPid?: number } {
  const pid = Number.parseInt(process.env.KWC_CLUSTER_WATCH_PID ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? { watchParentPid: pid } : {};
}

function printExport(kubeconfigPath: string, kubectl: string): void {
  say(`a kubectl of the same version: ${kubectl}`);
  say('stop it with: npm run cluster:down');
  process.stdout.write(`export KUBECONFIG=${kubeconfigPath}\n`);
}

const STATE_NAMES = [
  'etcd-data',
  'pki',
  'node',
  'kubeconfig',
  'controller-manager.kubeconfig',
  'scheduler.kubeconfig',
  'state.json',
  'etcd.log',
  'kube-apiserver.log',
  'kube-controller-manager.log',
  'kube-scheduler.log',
  'containerd.log',
  'kubelet.log',
  'watchdog.log',
];

// Keeps the lock file, which lives in the directory, and removes all else.
function cleanDir(dir: string): void {
  for (const name of STATE_NAMES) rmSync(join(dir, name), { recursive: true, force: true });
}

async function down(dir: string, removeDir: boolean): Promise<void> {
  await withDirectoryLock(dir, async () => {
    const state = readControlPlaneState(dir);
    if (!state) {
      say(`no cluster recorded in ${dir}; nothing to stop`);
      return;
    }
    teardown(state, { log: say });
    cleanDir(dir);
    say(`stopped ${state.server}${state.node ? ` and node ${state.node.name}` : ''}`);
  });
  if (removeDir) rmSync(dir, { recursive: true, force: true });
}

function line(name: string, ok: boolean, detail: string): void {
  say(`${ok ? 'ok  ' : 'DOWN'} ${name.padEnd(24)} ${detail}`);
}

async function status(dir: string): Promise<void> {
  const state = readControlPlaneState(dir);
  if (state === undefined) {
    say(`not running (no state in ${dir})`);
    process.exitCode = 1;
    return;
  }
  const ready = await controlPlaneReady(dir, state);
  const proc = (pid: number | undefined): boolean => pid !== undefined && pid > 0 && isRunning(pid);
  line('etcd', proc(state.etcdPid), `${state.versions.etcd}, ${state.etcdClientUrl}, pid ${state.etcdPid}`);
  line('kube-apiserver', proc(state.apiserverPid), `${state.versions.kubernetes}, ${state.server}, pid ${state.apiserverPid}`);
  if (state.node === undefined) {
    say('no node (--no-node): Pods are never started');
  } else {
    const node = state.node;
    line('kube-controller-manager', proc(state.controllerManagerPid), `pid ${state.controllerManagerPid ?? '-'}`);
    line('kube-scheduler', proc(state.schedulerPid), `pid ${state.schedulerPid ?? '-'}`);
    const ctr = await runCommand('ctr', ['--address', node.containerdSocket, 'version']).catch(() => undefined);
    const version = /Server:\s*\n\s*Version:\s*(\S+)/.exec(ctr?.stdout ?? '')?.[1] ?? '?';
    line('containerd', proc(node.containerdPid) && ctr?.code === 0, `${version}, ${node.containerdSocket}, pid ${node.containerdPid ?? '-'}`);
    line('kubelet', proc(node.kubeletPid), `${state.versions.kubernetes}, ${node.address}:${node.kubeletPort}, pid ${node.kubeletPid ?? '-'}`);
    const kubectl = await runCommand(state.binaries.kubectl, ['get', 'node', node.name, '--no-headers'], { env: { ...process.env, KUBECONFIG: state.kubeconfigPath } });
    line(`node ${node.name}`, /\sReady\s/.test(kubectl.stdout), kubectl.code === 0 ? kubectl.stdout.trim().replace(/\s+/g, ' ') : kubectl.stderr.trim());
    say(`     pod network ${node.cidr} on bridge ${node.bridge} (${node.address}); sandbox image ${node.pauseImage}`);
    const images = await runCommand('ctr', ctrArgs(node, ['images', 'ls', '-q'])).catch(() => undefined);
    const names = (images?.stdout ?? '').split('\n').filter((n) => n.startsWith('localhost/') && !n.includes('@'));
    say(`     images: ${names.length > 0 ? names.join(', ') : 'none (npm run images imports them)'}`);
  }
  if (ready) process.stdout.write(`export KUBECONFIG=${state.kubeconfigPath}\n`);
  else process.exitCode = 1;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { 'no-node': { type: 'boolean' }, dir: { type: 'string' }, 'remove-dir': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const { values, positionals } = parsed;
  const dir = values.dir ?? defaultClusterDir();
  switch (positionals[0]) {
    case 'up':
      return up(dir, values['no-node'] === true);
    case 'down':
      return down(dir, values['remove-dir'] === true);
    case 'status':
      return status(dir);
    default:
      process.stderr.write(USAGE);
      process.exitCode = values.help === true ? 0 : 2;
  }
}

main().catch((error: unknown) => {
  say(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
