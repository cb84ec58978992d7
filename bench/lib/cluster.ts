/**
 * The cluster a bench runs on: a fresh control plane of its own (default), or
 * one given by a kubeconfig (the smoke test's shared test cluster). The
 * install is the documented one: `kubectl apply -f dist/manifests.yaml`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { binariesPresent, binaryPaths, ensureBinaries, repoRoot } from '../../src/cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { KubeClient, resource } from '../../src/runtime/k8s-client.js';

export interface BenchCluster {
  kubeconfigPath: string;
  kubectl: string;
  kc: KubeConfig;
  client: KubeClient;
  /** kube-apiserver and etcd pids, for CPU readings (own control plane only). */
  pids: { apiserver?: number; etcd?: number };
  versions?: { kubernetes: string; etcd: string };
  stop(): Promise<void>;
}

export interface ClusterOptions {
  kubeconfigPath?: string;
  kubectl?: string;
  log: (line: string) => void;
}

export async function startBenchCluster(options: ClusterOptions): Promise<BenchCluster> {
  let plane: ControlPlane | undefined;
  let kubeconfigPath = options.kubeconfigPath;
  let kubectl = options.kubectl;
  if (kubeconfigPath === undefined) {
    const binaries = await ensureBinaries();
    plane = await startControlPlane({
      dir: mkdtempSync(join(tmpdir(), 'kwc-bench-cluster-')),
      binaries,
      log: (l) => options.log(`cluster: ${l}`),
      watchParentPid: process.pid,
      removeDirOnStop: true,
    });
    kubeconfigPath = plane.kubeconfigPath;
    kubectl ??= plane.kubectlPath;
  } else {
    const built = binaryPaths();
    kubectl ??= binariesPresent(built) ? built.kubectl : 'kubectl';
  }
  const kc = loadKubeConfig(kubeconfigPath);
  const cluster: BenchCluster = {
    kubeconfigPath,
    kubectl,
    kc,
    client: KubeClient.fromKubeConfig(kc),
    pids: plane === undefined ? {} : { apiserver: plane.state.apiserverPid, etcd: plane.state.etcdPid },
    versions: plane?.state.versions,
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
