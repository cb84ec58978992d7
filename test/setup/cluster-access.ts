/**
 * What a test file in the "cluster" project needs to talk to the cluster that
 * test/setup/cluster.ts started (or was pointed at with KWC_TEST_KUBECONFIG).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { binariesPresent, binaryPaths, repoRoot } from '../../src/cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import type { TestNode } from './cluster.js';

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

/** A kubectl that keeps running (port-forward, logs -f) until stopped; its output so far on request. */
export interface BackgroundKubectl {
  output(): string;
  stop(): void;
  done: Promise<void>;
}

export function kubectlInBackground(args: readonly string[], options: KubectlOptions = {}): BackgroundKubectl {
  const child = spawn(inject('kubectlPath'), [...args], {
    env: { ...process.env, KUBECONFIG: options.kubeconfig ?? kubeconfigPath() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { output: () => text, stop: () => void child.kill('SIGTERM'), done };
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
 * dist/manifests.yaml with the controller Deployment scaled to 0. In the
 * shared cluster each test runs its own controller, watching its own
 * namespace; an in-cluster one would watch every namespace and fight them
 * (the in-cluster controller has a cluster of its own: in-cluster.test.ts).
 */
function manifestsWithoutController(): string {
  const docs = parseAllDocuments(readFileSync(MANIFESTS, 'utf8')).map((d) => d.toJS() as { kind?: string; spec?: { replicas?: number } } | null);
  for (const doc of docs) if (doc?.kind === 'Deployment' && doc.spec !== undefined) doc.spec.replicas = 0;
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs.filter((d) => d !== null) });
}

/**
 * Applies dist/manifests.yaml (its Deployment scaled to 0, see above) to the
 * shared cluster and waits for the CRDs. Several test files may do this at
 * once; a create that loses the race to another file fails with
 * AlreadyExists, and the next attempt finds it.
 */
export async function ensureInstalled(options: KubectlOptions = {}): Promise<void> {
  let last: KubectlResult | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    last = await kubectl(['apply', '-f', '-'], { ...options, stdin: manifestsWithoutController() });
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
 * The shared cluster's node, or null when Pods never run (KWC_NO_NODE=1, an
 * external cluster). Tests that need Pods to run skip without it; CI never
 * runs without it.
 */
export function testNode(): TestNode | null {
  return inject('node');
}

/**
 * The condition of a `skipIf` for a test that needs `what` (the node, the
 * local test cluster, control planes of its own): true, so the test skips,
 * when it is missing on a developer's machine. Under `.ci/run` (KWC_CI=1) it
 * never skips: it throws, so the test file fails naming what is missing,
 * because CI runs every test that needs the local cluster.
 */
export function skipWithout(what: string, available: boolean): boolean {
  if (available) return false;
  if (process.env.KWC_CI === '1') throw new Error(`this test needs ${what}, which is missing; under .ci/run (KWC_CI=1) a test that needs the local cluster fails instead of skipping`);
  return true;
}

/** The node, for tests that only run when there is one (see {@link testNode}). */
export function requireNode(): TestNode {
  const node = testNode();
  if (node === null) throw new Error('this test needs the node (it should have been skipped: describe.skipIf(testNode() === null))');
  return node;
}

/**
 * A control plane of this test file's own, for tests that need a fresh cluster
 * or install something that would clash with the shared one. With `node`, a
 * whole cluster of its own next to the shared one (its own bridge, pod range
 * and ports), with the given image archives imported.
 */
export function startPrivateControlPlane(options: { node?: boolean; images?: readonly string[] } = {}): Promise<ControlPlane> {
  return startControlPlane({
    dir: mkdtempSync(join(tmpdir(), 'kwc-private-cluster-')),
    binaries: binaryPaths(),
    watchParentPid: process.pid,
    removeDirOnStop: true,
    node: options.node === true,
    images: options.images ?? [],
  });
}
