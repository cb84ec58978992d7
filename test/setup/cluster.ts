/**
 * vitest global setup of the "cluster" project: one real kube-apiserver + etcd
 * for the whole run, or the cluster named by KWC_TEST_KUBECONFIG. Test files
 * read the result with `inject('kubeconfigPath')` (see cluster-access.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { binariesPresent, binaryPaths, ensureBinaries } from '../../src/cluster/binaries.js';
import { startControlPlane } from '../../src/cluster/control-plane.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the kubeconfig every cluster test uses. */
    kubeconfigPath: string;
    /** A kubectl that works with that cluster. */
    kubectlPath: string;
    /** True when the tests run against a cluster they did not start (KWC_TEST_KUBECONFIG). */
    externalCluster: boolean;
  }
}

const say = (line: string): void => {
  process.stderr.write(`[test cluster] ${line}\n`);
};

function kubectlRuns(path: string): boolean {
  try {
    execFileSync(path, ['version', '--client'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

// For an existing cluster a kubectl may be all that is needed, so the
// multi-minute build only happens when no usable kubectl is around.
async function kubectlForExternalCluster(): Promise<string> {
  const explicit = process.env.KWC_TEST_KUBECTL;
  if (explicit !== undefined) return explicit;
  const built = binaryPaths();
  if (binariesPresent(built)) return built.kubectl;
  if (kubectlRuns('kubectl')) return 'kubectl';
  return (await ensureBinaries()).kubectl;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.KWC_TEST_KUBECONFIG;
  if (external !== undefined && external !== '') {
    const kubeconfigPath = resolve(external);
    const kubectlPath = await kubectlForExternalCluster();
    say(`using the existing cluster of ${kubeconfigPath} (KWC_TEST_KUBECONFIG) with ${kubectlPath}`);
    project.provide('kubeconfigPath', kubeconfigPath);
    project.provide('kubectlPath', kubectlPath);
    project.provide('externalCluster', true);
    return undefined;
  }

  const binaries = await ensureBinaries();
  const plane = await startControlPlane({
    dir: mkdtempSync(join(tmpdir(), 'kwc-test-cluster-')),
    binaries,
    log: say,
    watchParentPid: process.pid,
    removeDirOnStop: true,
  });

  // Teardown does not run when the run is interrupted; these do. A SIGKILL
  // is left to the watchdog started with the control plane.
  const onExit = (): void => plane.stopSync();
  const onSignal = (signal: NodeJS.Signals): void => {
    plane.stopSync();
    // With no other listener, ours suppressed the default exit: restore it.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  project.provide('kubeconfigPath', plane.kubeconfigPath);
  project.provide('kubectlPath', plane.kubectlPath);
  project.provide('externalCluster', false);
  return async () => {
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await plane.stop();
  };
}
