/**
 * `npm run demo` end to end, as a newcomer runs it (issues 8 and 14): its own
 * cluster with a node (from the binaries and images the test setup already
 * built), backend, the controller as a Pod, a pool of two and two runs that
 * really run; exit code 0 and nothing left behind.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { repoRoot } from '../../src/cluster/binaries.js';
import { isRoot } from '../../src/cluster/host-packages.js';
import { canStartControlPlanes, skipWithout, testNode } from '../setup/cluster-access.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function runDemo(args: readonly string[], env: NodeJS.ProcessEnv, viaNpm = true): Promise<{ code: number | null; output: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = viaNpm
      ? spawn('npm', ['run', '--silent', 'demo', '--', ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, ['--import', 'tsx', join('src', 'demo', 'main.ts'), ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output, stderr }));
  });
}

/** Processes whose command line mentions `text` (the demo's directory is in every server's flags). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(text)) found.push(`${pid}: ${cmd}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

describe.skipIf(skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()) || skipWithout('the node', testNode() !== null))('npm run demo', () => {
  test('runs the whole system: the controller is a Pod, the runs run on the node; shows what a user looks at, exits 0 and stops everything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-demo-test-'));
    dirs.push(dir);
    const started = Date.now();
    const { code, output } = await runDemo([], { ...process.env, KWC_DEMO_DIR: dir });
    const seconds = (Date.now() - started) / 1000;
    expect(code, output).toBe(0);
    expect(output).toContain('cached: kubernetes');
    // Nothing plays the kubelet any more.
    expect(output).not.toMatch(/kubelet.play|plays? the kubelet|--subresource.status/i);
    // A node of its own, Ready.
    expect(output).toMatch(/^kwc-node\s+Ready\s/m);
    // The controller is a Pod from the locally built image, installed from dist/manifests.yaml.
    expect(output).toContain('$ kubectl apply -f dist/manifests.yaml');
    expect(output).toMatch(/deployment\.apps\/kube-workerpool-controller\s+1\/1\s+1\s+1\s.*localhost\/kube-workerpool-controller@sha256:[0-9a-f]{64}/);
    expect(output).toMatch(/^pod\/kube-workerpool-controller-\S+\s+1\/1\s+Running\s/m);
    expect(output).toMatch(/^NAME\s+DESIRED POOL SIZE\s+ACTUAL POOL SIZE\s/m);
    expect(output).toMatch(/^demo\s+2\s+2\s/m);
    expect(output).toMatch(/\$ kubectl create secret generic demo-credentials .*--from-literal=privateKey="\$\(base64 -w 0 < key.pem\)"/);
    // A run pod, found by its run-id label, running on the node: init done, launcher-grpc and worker up.
    const runPod = /\$ kubectl get pods -l workers\.spacelift\.io\/run-id=(\w+) -o wide\nNAME\s+READY\s+STATUS.*\n(\w+)-run-1\s+2\/2\s+Running\s+0\s+\S+\s+10\.244\.\d+\.\d+\s+kwc-node/.exec(output);
    expect(runPod, output).not.toBeNull();
    expect(runPod?.[2]).toBe(runPod?.[1]?.toLowerCase());
    // One run finished, one failed with its exit code, and the failed one's log, as kubectl logs shows it.
    expect(output).toMatch(/^\w+\s+finished\s/m);
    expect(output).toMatch(/^\w+\s+failed\s+\w+\s+1\s+worker container exited with code 1/m);
    expect(output).toContain('Error: the provider refused the change');
    expect(output).toMatch(/RunFailed\s+Worker\/demo-/);
    // Runs carry scripts, submitted with the command-line client; each run's log, fetched from the backend, is what its script printed.
    const submitted = [...output.matchAll(/\$ npm run -s backend -- runs submit --pool \w+ (plan|apply|cache)\.sh\n(\w+)\n/g)].map((m) => [m[1], m[2]] as const);
    expect(submitted.map(([file]) => file)).toEqual(['plan', 'apply', 'cache']);
    const [plan, apply, cache] = submitted.map(([, id]) => id as string);
    expect(output).toMatch(new RegExp(`\\$ npm run -s backend -- logs ${plan}\\nplanning run ${plan} in /opt/spacelift/workspace\\n  \\+ resource "null_resource" "demo" will be created\\nPlan: 1 to add, 0 to change, 0 to destroy\\.\\n`));
    expect(output).toMatch(new RegExp(`\\$ npm run -s backend -- logs ${apply}\\napplying run ${apply}\\nError: the provider refused the change\\n`));
    // The third run uses what one of the first two cached.
    expect(output).toMatch(new RegExp(`\\$ npm run -s backend -- logs ${cache}\\ntools on PATH from the binaries cache: /opt/spacelift/binaries_cache/bin/kwc\\nbinaries cache /opt/spacelift/binaries_cache: kwc \\(kwc [0-9.]+\\), cached by run (${plan}|${apply}) at `));
    // Metrics through the Service, with a reader token; none without.
    expect(output).toMatch(/^spacelift_workerpool_controller_worker_total\{pool_ulid="\w+"\} 2$/m);
    expect(output).toContain('without a token: 401');
    expect(output).toMatch(/step 10\/10: stopping everything/);
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(join(dir, 'demo.json'))).toBe(false);
    process.stderr.write(`[demo test] npm run demo took ${seconds.toFixed(1)} s\n`);
  }, 600_000);

  test('--keep leaves everything running for kubectl, and --down stops it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-demo-keep-'));
    dirs.push(dir);
    const env = { ...process.env, KWC_DEMO_DIR: dir };
    try {
      const kept = await runDemo(['--keep'], env, false);
      expect(kept.code, kept.output).toBe(0);
      expect(kept.output).toContain(`export KUBECONFIG=${join(dir, 'cluster', 'kubeconfig')}`);
      expect(kept.output).toMatch(/Backend API: https:\/\/10\.244\.\d+\.1:\d+ \(CA .*ca\.pem, admin token file .*admin-token\)/);
      expect(kept.output).toContain('npm run demo -- --down');
      // The cluster (its node too) and the backend outlive the demo; the controller is one of its Pods.
      const state = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as { backendPid: number };
      expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(6);
      expect(processesMentioning(dir).some((p) => /^\d+: containerd --config /.test(p))).toBe(true);
      expect(() => process.kill(state.backendPid, 0)).not.toThrow();
      const pods = await new Promise<string>((resolve) =>
        execFile(inject('kubectlPath'), ['-n', 'spacelift-worker-controller-system', 'get', 'pods', '--no-headers'], { env: { ...process.env, KUBECONFIG: join(dir, 'cluster', 'kubeconfig') } }, (_e, stdout) => resolve(stdout)),
      );
      expect(pods).toMatch(/^kube-workerpool-controller-\S+\s+1\/1\s+Running/m);
    } finally {
      const down = await runDemo(['--down'], env, false);
      expect(down.code, down.output).toBe(0);
      expect(down.output).toMatch(/stopped: backend .*, cluster \(https:\/\/10\.244\.\d+\.1:\d+, node kwc-node\)/);
    }
    expect(processesMentioning(dir)).toEqual([]);
  }, 600_000);
});

describe('npm run demo, when it cannot run', () => {
  test('fails with the step and the reason when a step fails, and leaves nothing running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-demo-fail-'));
    dirs.push(dir);
    // An empty binaries cache and a `go` that always fails: the build of step 1 cannot succeed.
    // Not inside the demo's directory: the demo empties that first.
    const fakeBin = mkdtempSync(join(tmpdir(), 'kwc-demo-fake-go-'));
    dirs.push(fakeBin);
    writeFileSync(join(fakeBin, 'go'), '#!/bin/sh\necho "fake go: no builds in this test" >&2\nexit 1\n', { mode: 0o755 });
    const env = { ...process.env, KWC_DEMO_DIR: dir, KWC_BIN_CACHE: join(dir, 'no-binaries'), PATH: `${fakeBin}${delimiter}${process.env.PATH ?? ''}` };
    const { code, output, stderr } = await runDemo([], env, false);
    expect(code, output).toBe(1);
    expect(stderr).toMatch(/demo FAILED at step 1\/10 \(Kubernetes binaries.*\): build-binaries\.sh failed/);
    // The build's own words, which say why, are on screen too.
    expect(output).toContain('build: fake go: no builds in this test');
    expect(processesMentioning(dir)).toEqual([]);
  }, 60_000);

  test.skipIf(!isRoot() || !existsSync('/usr/sbin/runuser'))('without root: stops at step 1 naming root and what to do, having built and started nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-demo-no-root-'));
    dirs.push(dir);
    chmodSync(dir, 0o777);
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(
        '/usr/sbin/runuser',
        ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', join('src', 'demo', 'main.ts')],
        { cwd: repoRoot, env: { ...process.env, HOME: dir, KWC_DEMO_DIR: join(dir, 'demo') } },
        (error, stdout, stderr) => resolve({ code: typeof error?.code === 'number' ? error.code : 0, output: stdout + stderr }),
      ),
    );
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(/demo FAILED at step 1\/10 \(Kubernetes binaries.*\): the local node \(containerd and a kubelet\) needs root/);
    expect(result.output).not.toContain('build:');
    expect(processesMentioning(dir)).toEqual([]);
  }, 60_000);

  test('refuses unknown flags with its usage', async () => {
    const { code, stderr } = await runDemo(['--bogus'], { ...process.env, KWC_DEMO_DIR: join(tmpdir(), 'kwc-demo-unused') }, false);
    expect(code).toBe(2);
    expect(stderr).toContain('usage: npm run demo');
  }, 30_000);
});
