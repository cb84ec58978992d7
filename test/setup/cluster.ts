/**
 * vitest global setup of the "cluster" project: one real cluster for the
 * whole run (etcd, kube-apiserver, kube-controller-manager, kube-scheduler
 * and a node: containerd + kubelet), or the cluster named by
 * KWC_TEST_KUBECONFIG. Test files read the result with `inject(...)` (see
 * cluster-access.ts).
 *
 * KWC_NO_NODE=1 starts the control plane alone, for machines that cannot run
 * containers (no root): the tests that need Pods to run then skip. CI never
 * sets it. Host pieces (containerd, runc, the CNI plugins, nftables,
 * mosquitto) are installed on first use as root; without root a missing one
 * stops the run with a message naming it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { binariesPresent, binaryPaths, ensureBinaries } from '../../src/cluster/binaries.js';
import { startControlPlane } from '../../src/cluster/control-plane.js';
import { ensureHostPieces, NODE_PIECES, type HostPieceName } from '../../src/cluster/host-packages.js';
import { hostSnapshot, nodesRunning, snapshotDifferences, type HostSnapshot } from '../../src/cluster/node-host.js';
import { buildImages, type BuiltImages } from '../../src/images/build.js';

/** What tests know of the node, when the cluster has one of ours. */
export interface TestNode {
  name: string;
  /** The cluster's state directory (the node's files are in its node/ directory). */
  clusterDir: string;
  /** The bridge address: where pods reach the host (the backend listens there). */
  address: string;
  /** References of the locally built images, all imported into the node's containerd. */
  images: { [K in keyof BuiltImages]: { ref: string; digestRef: string; archive: string } };
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Absolute path of the kubeconfig every cluster test uses. */
    kubeconfigPath: string;
    /** A kubectl that works with that cluster. */
    kubectlPath: string;
    /** True when the tests run against a cluster they did not start (KWC_TEST_KUBECONFIG). */
    externalCluster: boolean;
    /** The node, or null when Pods never run (KWC_NO_NODE=1, or an external cluster). */
    node: TestNode | null;
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
    say(`using the existing cluster of ${kubeconfigPath} (KWC_TEST_KUBECONFIG) with ${kubectlPath}; the tests that run Pods skip`);
    await ensureHostPieces(['mosquitto'], { what: 'the backend tests', log: say });
    project.provide('kubeconfigPath', kubeconfigPath);
    project.provide('kubectlPath', kubectlPath);
    project.provide('externalCluster', true);
    project.provide('node', null);
    return undefined;
  }

  const withNode = process.env.KWC_NO_NODE !== '1';
  if (!withNode) say('KWC_NO_NODE=1: the control plane alone; the tests that run Pods skip');
  const pieces: HostPieceName[] = [...(withNode ? NODE_PIECES : []), 'mosquitto'];
  await ensureHostPieces(pieces, {
    what: withNode ? 'the test suite (its cluster runs a node)' : 'the test suite',
    alternative: withNode ? 'Or run without a node (the tests that run Pods then skip): KWC_NO_NODE=1 npm test' : undefined,
    log: say,
  });
  const binaries = await ensureBinaries();
  const images = withNode ? await buildImages(['pause', 'controller', 'launcher', 'runner', 'standinLauncher', 'standinRunner'], { log: say }) : undefined;

  // The host as it was, to check after the last node is gone that nothing was left behind.
  const before: HostSnapshot | undefined = withNode && !nodesRunning() ? hostSnapshot() : undefined;
  const plane = await startControlPlane({
    dir: mkdtempSync(join(tmpdir(), 'kwc-test-cluster-')),
    binaries,
    log: say,
    watchParentPid: process.pid,
    removeDirOnStop: true,
    node: withNode,
    images: images === undefined ? [] : [images.launcher.archive, images.runner.archive, images.standinLauncher.archive, images.standinRunner.archive],
  });

  // Teardown does not run when the run is interrupted; these do. A SIGKILL
  // is left to the watchdog started with the cluster.
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
  project.provide(
    'node',
    plane.state.node === undefined || images === undefined
      ? null
      : {
          name: plane.state.node.name,
          clusterDir: plane.dir,
          address: plane.state.node.address,
          images: Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { ref: v.ref, digestRef: v.digestRef, archive: v.archive }])) as TestNode['images'],
        },
  );
  return async () => {
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await plane.stop();
    if (before !== undefined && !nodesRunning()) {
      const differences = snapshotDifferences(before, hostSnapshot());
      if (differences.length > 0) throw new Error(`the test cluster's teardown left the host changed:\n  ${differences.join('\n  ')}`);
      say('host restored: kernel settings, nftables, links, network namespaces, cgroups, mounts and paths as before');
    }
  };
}
