/**
 * The documented install on a fresh cluster, the one `npm run cluster:up`
 * starts: `kubectl apply -f dist/manifests.yaml` creates everything, a second
 * apply changes nothing, and `kubectl get workerpools` works. Also proves the
 * cluster:up / cluster:status / cluster:down contract along the way, with a
 * node next to the shared test cluster's (its own bridge, pod range and
 * ports), or with --no-node when the test run has no node.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/cluster/binaries.js';
import type { ControlPlaneState } from '../../src/cluster/control-plane.js';
import { isRunning } from '../../src/cluster/processes.js';
import { canStartControlPlanes, kubectl, kubectlOk, MANIFESTS, skipWithout, testNode } from '../setup/cluster-access.js';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const withNode = testNode() !== null;

function cli(command: 'up' | 'down' | 'status', stateDir: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      join(repoRoot, 'node_modules', '.bin', 'tsx'),
      [join(repoRoot, 'src', 'cluster', 'cli.ts'), command, ...(command === 'up' && !withNode ? ['--no-node'] : [])],
      // Watching this worker's pid stops the cluster even if the run is killed before afterAll.
      { cwd: repoRoot, env: { ...process.env, KWC_CLUSTER_DIR: stateDir, KWC_CLUSTER_WATCH_PID: String(process.pid) } },
      (error, stdout, stderr) => resolve({ code: typeof error?.code === 'number' ? error.code : error ? 1 : 0, stdout, stderr }),
    );
  });
}

function readState(stateDir: string): ControlPlaneState {
  return JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as ControlPlaneState;
}

/**
 * `kind/name` of every object in the manifests with its resourceVersion, as
 * the server has it; for the Deployment its generation, since its controller
 * keeps writing its status (which changes the resourceVersion, not the spec).
 */
async function resourceVersions(kubeconfig: string): Promise<string[]> {
  const out = await kubectlOk(
    ['get', '-f', MANIFESTS, '-o', 'jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}/{.metadata.generation}{"\\n"}{end}'],
    { kubeconfig },
  );
  return out
    .trim()
    .split('\n')
    .map((line) => (line.startsWith('Deployment/') ? line.replace(/=\d+\//, '=') : line))
    .sort();
}

const manifestObjectCount = readFileSync(MANIFESTS, 'utf8')
  .split(/^---$/m)
  .filter((doc) => /^kind:/m.test(doc)).length;

describe.skipIf(skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()))('npm run cluster:up, then the documented install', () => {
  let stateDir = '';
  let first: CliResult;
  let kubeconfig = '';

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwc-cluster-up-'));
    first = await cli('up', stateDir);
    kubeconfig = /^export KUBECONFIG=(.+)$/.exec(first.stdout.trim())?.[1] ?? '';
  });

  afterAll(async () => {
    await cli('down', stateDir);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('prints exactly one line, export KUBECONFIG=<absolute path of a file>', () => {
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^export KUBECONFIG=\S+\n$/);
    expect(isAbsolute(kubeconfig)).toBe(true);
    expect(existsSync(kubeconfig)).toBe(true);
  });

  it('applies dist/manifests.yaml with plain client-side kubectl apply, creating every object', async () => {
    const result = await kubectl(['apply', '-f', MANIFESTS], { kubeconfig });
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(manifestObjectCount);
    for (const line of lines) expect(line).toMatch(/ created$/);
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/workerpools.workers.spacelift.io', 'crd/workers.workers.spacelift.io'], {
      kubeconfig,
    });
  });

  it('changes nothing when applied a second time', async () => {
    const before = await resourceVersions(kubeconfig);
    const result = await kubectl(['apply', '-f', MANIFESTS], { kubeconfig });
    expect(result.code, result.stderr).toBe(0);
    for (const line of result.stdout.trim().split('\n')) expect(line).toMatch(/ unchanged$/);
    expect(await resourceVersions(kubeconfig)).toEqual(before);
  });

  it('lets kubectl get workerpools use the printed kubeconfig', async () => {
    const result = await kubectl(['get', 'workerpools', '--all-namespaces'], { kubeconfig });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('No resources found');
  });

  it('is safe to run twice: the second run reuses the running control plane', async () => {
    const running = readState(stateDir);
    const second = await cli('up', stateDir);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(readState(stateDir).apiserverPid).toBe(running.apiserverPid);
    // The install from the earlier tests is still there: nothing was restarted or wiped.
    expect((await kubectl(['get', 'crd', 'workerpools.workers.spacelift.io'], { kubeconfig })).code).toBe(0);
  });

  it('cluster:status shows each part', async () => {
    const status = await cli('status', stateDir);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toBe(first.stdout);
    expect(status.stderr).toMatch(/ok +etcd +v3\./);
    expect(status.stderr).toMatch(/ok +kube-apiserver +v1\./);
    if (withNode) {
      for (const part of ['kube-controller-manager', 'kube-scheduler', 'containerd', 'kubelet', 'node kwc-node']) expect(status.stderr).toMatch(new RegExp(`ok +${part} `));
      expect(status.stderr).toMatch(/pod network 10\.244\.\d+\.0\/24 on bridge kwc\d+/);
    } else {
      expect(status.stderr).toContain('no node (--no-node)');
    }
  });

  it.skipIf(skipWithout('the node', withNode))('runs side by side with the test cluster: its own bridge, pod range and ports', () => {
    const state = readState(stateDir);
    expect(state.node?.bridge).not.toBe(`kwc${/10\.244\.(\d+)\./.exec(testNode()?.address ?? '')?.[1] ?? ''}`);
    expect(state.node?.address).not.toBe(testNode()?.address);
    expect(existsSync(`/sys/class/net/${state.node?.bridge ?? ''}`)).toBe(true);
  });

  it('cluster:down stops every part, and removes the node from the host', async () => {
    const running = readState(stateDir);
    const down = await cli('down', stateDir);
    expect(down.code, down.stderr).toBe(0);
    for (const pid of [running.apiserverPid, running.etcdPid, running.controllerManagerPid, running.schedulerPid, running.node?.kubeletPid, running.node?.containerdPid]) {
      if (pid !== undefined) expect(isRunning(pid)).toBe(false);
    }
    expect(existsSync(join(stateDir, 'state.json'))).toBe(false);
    if (running.node !== undefined) {
      expect(existsSync(`/sys/class/net/${running.node.bridge}`)).toBe(false);
      expect(existsSync(`/run/kwc${running.node.index}`)).toBe(false);
      expect(existsSync(`/sys/fs/cgroup/memory/kwc${running.node.index}`)).toBe(false);
    }
  });
});
