/**
 * `npm run cluster:up` / `cluster:down` / `cluster:status`: a local kube-apiserver
 * + etcd that outlives the command. Progress goes to stderr; stdout carries
 * only the `export KUBECONFIG=...` line, so `eval "$(npm run -s cluster:up)"` works.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries, repoRoot } from './binaries.js';
import { controlPlaneReady, readControlPlaneState, startControlPlane, stopControlPlaneFromState } from './control-plane.js';
import { withDirectoryLock } from './lock.js';

const dir = process.env.KWC_CLUSTER_DIR ?? join(repoRoot, '.cache', 'cluster');
const say = (line: string): void => {
  process.stderr.write(`[cluster] ${line}\n`);
};

async function up(): Promise<void> {
  const binaries = await ensureBinaries();
  await withDirectoryLock(dir, async () => {
    const existing = readControlPlaneState(dir);
    if (existing && (await controlPlaneReady(dir, existing))) {
      say(`already running at ${existing.server} (state in ${dir})`);
      printExport(existing.kubeconfigPath, binaries.kubectl);
      return;
    }
    if (existing) {
      say('found a stopped or half-running control plane; cleaning it up');
      await stopControlPlaneFromState(existing);
    }
    cleanDir();
    const plane = await startControlPlane({ dir, binaries, log: say, ...watchedPid() });
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

// Keeps the lock file, which lives in the directory, and removes all else.
function cleanDir(): void {
  for (const name of ['etcd-data', 'pki', 'kubeconfig', 'state.json', 'etcd.log', 'kube-apiserver.log', 'watchdog.log']) {
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

async function down(): Promise<void> {
  await withDirectoryLock(dir, async () => {
    const state = readControlPlaneState(dir);
    if (!state) {
      say(`no control plane recorded in ${dir}; nothing to stop`);
      return;
    }
    await stopControlPlaneFromState(state);
    cleanDir();
    say(`stopped ${state.server}`);
  });
}

async function status(): Promise<void> {
  const state = readControlPlaneState(dir);
  if (state && (await controlPlaneReady(dir, state))) {
    say(`running at ${state.server}, kubernetes ${state.versions.kubernetes}, etcd ${state.versions.etcd}`);
    process.stdout.write(`export KUBECONFIG=${state.kubeconfigPath}\n`);
    return;
  }
  say(state ? 'recorded but not ready' : 'not running');
  process.exitCode = 1;
}

const commands: Record<string, () => Promise<void>> = { up, down, status };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  process.stderr.write('usage: tsx src/cluster/cli.ts up|down|status\n');
  process.exitCode = 2;
} else {
  command().catch((error: unknown) => {
    say(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  });
}
