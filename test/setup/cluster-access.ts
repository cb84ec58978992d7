/**
 * What a test file in the "cluster" project needs to talk to the cluster that
 * test/setup/cluster.ts started (or was pointed at with KWC_TEST_KUBECONFIG).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { binariesPresent, binaryPaths, repoRoot } from '../../src/cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';

export const MANIFESTS = join(repoRoot, 'dist', 'manifests.yaml');

export function kubeconfigPath(): string {
  return inject('kubeconfigPath');
}

export function testKubeConfig(): KubeConfig {
  return loadKubeConfig(kubeconfigPath());
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  stdin?: string;
  /** Another cluster than the shared test cluster (a private control plane). */
  kubeconfig?: string;
}

/**
 * Runs the version-matched kubectl. Never throws on a non-zero exit: tests
 * assert on the code and the message themselves.
 */
export function kubectl(args: readonly string[], options: KubectlOptions = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      inject('kubectlPath'),
      [...args],
      {
        env: { ...process.env, KUBECONFIG: options.kubeconfig ?? kubeconfigPath() },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}

/** Like kubectl(), but a non-zero exit fails with kubectl's own message. */
export async function kubectlOk(args: readonly string[], options: KubectlOptions = {}): Promise<string> {
  const result = await kubectl(args, options);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A fresh namespace per test file, since tests share one cluster and nothing garbage-collects. */
export async function createTestNamespace(prefix: string, kc: KubeConfig = testKubeConfig()): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * Applies dist/manifests.yaml to the shared cluster and waits for the CRDs.
 * Several test files may do this at once; a create that loses the race to
 * another file fails with AlreadyExists, and the next attempt finds it.
 */
export async function ensureInstalled(options: KubectlOptions = {}): Promise<void> {
  let last: KubectlResult | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    last = await kubectl(['apply', '-f', MANIFESTS], options);
    if (last.code === 0) break;
  }
  if (last?.code !== 0) throw new Error(`kubectl apply -f ${MANIFESTS} failed: ${last?.stderr ?? ''}`);
  await kubectlOk(
    ['wait', '--for=condition=Established', '--timeout=60s', 'crd/workerpools.workers.spacelift.io', 'crd/workers.workers.spacelift.io'],
    options,
  );
}

/** True when tests may start control planes of their own (not against a user's cluster). */
export function canStartControlPlanes(): boolean {
  return !inject('externalCluster') && binariesPresent(binaryPaths());
}

/**
 * A control plane of this test file's own, for tests that need a fresh cluster
 * or install something that would clash with the shared one.
 */
export function startPrivateControlPlane(): Promise<ControlPlane> {
  return startControlPlane({
    dir: mkdtempSync(join(tmpdir(), 'kwc-private-cluster-')),
    binaries: binaryPaths(),
    watchParentPid: process.pid,
    removeDirOnStop: true,
  });
}
