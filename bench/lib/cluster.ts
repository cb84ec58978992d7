/**
 * The cluster a bench runs on: a fresh cluster of its own (default), or one
 * given by a kubeconfig (the smoke test's shared test cluster). The install
 * is the documented one: `kubectl apply -f dist/manifests.yaml`.
 *
 * A cluster of its own has a node when the run Pods fit on it (at most
 * {@link MAX_REAL_PODS}); its runs then really run, on the stand-in images.
 * Beyond that (N = 1000), no 2-core machine runs the Pods: the cluster is a
 * control plane alone and the bench plays the kubelet (kubelet-play.ts),
 * the one place the project still does.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { binariesPresent, binaryPaths, ensureBinaries, repoRoot } from '../../src/cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../../src/cluster/control-plane.js';
import { buildImages } from '../../src/images/build.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { KubeClient, resource } from '../../src/runtime/k8s-client.js';

/** The kubelet's maxPods: more run Pods than this cannot run on one node. */
export const MAX_REAL_PODS = 110;

/** Images of runs that really run on a node. */
export interface RunImages {
  runnerImage: string;
  launcherImage: string;
}

export interface BenchCluster {
  /** Set when the cluster's node runs the run Pods; undefined when the bench plays the kubelet. */
  runImages?: RunImages;
  kubeconfigPath: string;
  kubectl: string;
  kc: KubeConfig;
  client: KubeClient;
  /** kube-apiserver and etcd pids, for CPU readings (own control plane only). */
  pids: { apiserver?: number; etcd?: number };
  versions?: { kubernetes: string; etcd: string };
  /** Kills kube-apiserver and starts it again (own control plane only). */
  restartApiServer?(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  kubeconfigPath?: string;
  kubectl?: string;
  /** With kubeconfigPath: the images of that cluster's node, if it runs run Pods. */
  runImages?: RunImages;
  /** Run Pods the bench will have at once; decides whether a cluster of its own gets a node. */
  pods: number;
  log: (line: string) => void;
}

export async function startBenchCluster(options: ClusterOptions): Promise<BenchCluster> {
  let plane: ControlPlane | undefined;
  let kubeconfigPath = options.kubeconfigPath;
  let kubectl = options.kubectl;
  let runImages = options.runImages;
  if (kubeconfigPath === undefined) {
    const binaries = await ensureBinaries();
    const node = options.pods <= MAX_REAL_PODS;
    const images = node ? await buildImages(['pause', 'standinLauncher', 'standinRunner'], { log: (l) => options.log(`images: ${l}`) }) : undefined;
    if (!node) options.log(`${options.pods} run Pods do not fit on one node (maxPods ${MAX_REAL_PODS}): a control plane alone, and the bench plays the kubelet`);
    plane = await startControlPlane({
      dir: mkdtempSync(join(tmpdir(), 'kwc-bench-cluster-')),
      binaries,
      log: (l) => options.log(`cluster: ${l}`),
      watchParentPid: process.pid,
      removeDirOnStop: true,
      node,
      images: images === undefined ? [] : [images.standinLauncher.archive, images.standinRunner.archive],
    });
    if (images !== undefined) runImages = { runnerImage: images.standinRunner.ref, launcherImage: images.standinLauncher.ref };
    kubeconfigPath = plane.kubeconfigPath;
    kubectl ??= plane.kubectlPath;
  } else {
    const built = binaryPaths();
    kubectl ??= binariesPresent(built) ? built.kubectl : 'kubectl';
  }
  const kc = loadKubeConfig(kubeconfigPath);
  const cluster: BenchCluster = {
    ...(runImages !== undefined ? { runImages } : {}),
    kubeconfigPath,
    kubectl,
    kc,
    client: KubeClient.fromKubeConfig(kc),
    pids: plane === undefined ? {} : { apiserver: plane.state.apiserverPid, etcd: plane.state.etcdPid },
    versions: plane?.state.versions,
    ...(plane === undefined ? {} : { restartApiServer: () => plane.restartApiServer() }),
    async stop() {
      cluster.client.rest.close();
      await plane?.stop();
    },
  };
  if (plane !== undefined) {
    const onExit = (): void => plane?.stopSync();
    process.once('exit', onExit);
  }
  return cluster;
}

export function kubectlRun(cluster: BenchCluster, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cluster.kubectl, [...args], { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** The documented install; idempotent, so a shared cluster that has it already is fine. */
export async function install(cluster: BenchCluster): Promise<void> {
  const manifests = join(repoRoot, 'dist', 'manifests.yaml');
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await kubectlRun(cluster, ['apply', '-f', manifests]);
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err; // another test file applying at the same moment loses a create race; the retry finds it
    }
  }
  if (lastError !== undefined) throw lastError;
  await kubectlRun(cluster, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/workerpools.workers.spacelift.io', 'crd/workers.workers.spacelift.io']);
}

const NAMESPACES = resource('', 'v1', 'namespaces', 'Namespace');

export async function createNamespace(cluster: BenchCluster, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await cluster.client.create(NAMESPACES, undefined, { metadata: { name } });
  return name;
}
