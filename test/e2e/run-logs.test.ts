/**
 * Runs that really run (issue 16): the reference launcher and runner images
 * on the node, a run's script from `POST /api/runs`, and its output in the
 * backend (`GET /api/runs/<id>/logs`), equal to `kubectl logs -c worker`.
 * Nothing here writes a Pod's status or a log: the kubelet and the
 * controller's relay do.
 */
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LABEL_RUN_ID } from '../../src/api/constants.js';
import type { Pod } from '../../src/runtime/k8s-client.js';
import type { Pool } from '../integration/backend-harness.js';
import { kubectlOk, skipWithout, testNode } from '../setup/cluster-access.js';
import { startE2E, waitFor, type E2E, type RunView } from './harness.js';

const node = testNode();
const RUN_UID = 1983;

describe.skipIf(skipWithout('the node', node !== null))('run scripts and their logs on the node', () => {
  let e2e: E2E;
  let pool: Pool;
  let other: Pool;
  let cachePool: Pool;
  let cacheDir: string;
  const images = { launcherImage: node?.images.launcher.ref ?? '', runnerImage: node?.images.runner.ref ?? '' };

  beforeAll(async () => {
    e2e = await startE2E('e2e-run-logs');
    e2e.startController();
    // A binaries cache that outlives a run Pod, so that a pool's second run finds what the first cached.
    cacheDir = mkdtempSync(join(tmpdir(), 'kwc-e2e-binaries-cache-'));
    chownSync(cacheDir, RUN_UID, RUN_UID);
    pool = await e2e.createWorkerPool('scripts', 1, { keepSuccessfulPods: true, allowedRunnerImageHosts: ['localhost'] });
    other = await e2e.createWorkerPool('other', 1, { keepSuccessfulPods: true });
    cachePool = await e2e.createWorkerPool('cached', 1, {
      keepSuccessfulPods: true,
      pod: { binariesCacheVolume: { hostPath: { path: cacheDir, type: 'Directory' } }, nodeSelector: { 'kubernetes.io/hostname': node?.name ?? '' } },
    });
    await waitFor(
      'the pools to be ready',
      async () => {
        const idle = await Promise.all(['scripts', 'other', 'cached'].map(async (n) => (await e2e.pool(n)).status?.idleWorkers));
        return idle.every((n) => n === 1);
      },
      90_000,
    );
  });
  afterAll(async () => {
    await e2e?.close();
    if (cacheDir !== undefined) rmSync(cacheDir, { recursive: true, force: true });
  });

  async function submit(poolId: string, script: string): Promise<string> {
    return e2e.submitRun(poolId, { ...images, script });
  }

  async function podOfRun(runId: string): Promise<Pod> {
    return waitFor(`the pod of run ${runId}`, async () => (await e2e.pods(`${LABEL_RUN_ID}=${runId}`))[0], 60_000);
  }

  async function ended(runId: string, state: string, timeoutMs = 120_000): Promise<RunView> {
    return waitFor(`run ${runId} to be ${state}`, async () => {
      const run = await e2e.run(runId);
      if (['finished', 'failed', 'stopped'].includes(run.state) && run.state !== state) throw new Error(`run ${runId} ended ${run.state}: ${run.reason ?? ''}`);
      return run.state === state ? run : undefined;
    }, timeoutMs);
  }

  /** `GET /api/runs/<id>/logs[?follow=1]`, with each chunk as it arrived. */
  function backendLog(runId: string, follow = false): { chunks: string[]; done: Promise<string> } {
    const chunks: string[] = [];
    const done = new Promise<string>((resolve, reject) => {
      const url = new URL(`/api/runs/${runId}/logs${follow ? '?follow=1' : ''}`, e2e.env.backend.apiUrl);
      https
        .get(url, { ca: e2e.env.backend.caPem, headers: { authorization: `Bearer ${e2e.env.backend.adminToken}` } }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`GET ${url.pathname}: ${res.statusCode}`));
          res.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
          res.on('end', () => resolve(chunks.join('')));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    return { chunks, done };
  }

  async function kubectlLogs(podName: string, container: string): Promise<string> {
    return kubectlOk(['logs', podName, '-n', e2e.namespace, '-c', container]);
  }

  /** The backend's log once complete (the run's end is reported only after its log is). */
  async function completeLog(runId: string): Promise<string> {
    await waitFor(`the log of run ${runId} to be complete`, async () => {
      const view = (await e2e.env.admin<{ log: { complete: boolean } }>('GET', `/api/runs/${runId}`)).body;
      return view.log.complete;
    }, 60_000);
    return backendLog(runId).done;
  }

  test('the script runs as 1983 in the workspace with the documented variables and volumes; its output is the backend log, equal to kubectl logs', async () => {
    const script = [
      'echo "plan: 1 to add, 0 to change, 0 to destroy"',
      'echo "uid=$(id -u) gid=$(id -g) pwd=$(pwd)"',
      'env | grep "^SPACELIFT_" | sort',
      'echo "PATH=$PATH"',
      'ls "$SPACELIFT_WORKSPACE_PATH/.spacelift"',
      'ls "$SPACELIFT_BINARIES_CACHE_PATH/bin"',
      'kwc run-info | grep -c "\\"runId\\":\\"$SPACELIFT_RUN_ID\\""',
      'kwc phase planning "from the script"',
      'echo "to stderr" >&2',
      'test -e /opt/spacelift/run/script && echo "the Secret is mounted in worker" || echo "no Secret in worker"',
      'exit 0',
    ].join('\n');
    const runId = await submit(pool.id, script);
    const pod = await podOfRun(runId);
    const name = pod.metadata?.name ?? '';
    // The script reaches the Pod through a Secret mounted into init alone; the pool's credentials never do.
    const volumes = pod.spec?.volumes ?? [];
    expect(volumes.find((v) => v.name === 'run-script')?.secret?.secretName).toBe(name);
    expect(pod.spec?.initContainers?.find((c) => c.name === 'init')?.volumeMounts?.map((m) => m.mountPath)).toContain('/opt/spacelift/run');
    expect(pod.spec?.containers.find((c) => c.name === 'worker')?.volumeMounts?.map((m) => m.mountPath)).not.toContain('/opt/spacelift/run');
    expect(JSON.stringify(pod.spec)).not.toContain('scripts-credentials');
    // No other Secret at all: not the Worker's (its key and certificate), not the pool's.
    expect(volumes.filter((v) => v.secret !== undefined).map((v) => v.secret?.secretName)).toEqual([name]);
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      expect(c.envFrom ?? [], c.name).toEqual([]);
      expect((c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef !== undefined), c.name).toEqual([]);
    }

    const run = await ended(runId, 'finished');
    expect(run.exitCode ?? 0).toBe(0);
    const log = await completeLog(runId);
    expect(log).toBe(await kubectlLogs(name, 'worker'));
    const lines = log.split('\n');
    expect(lines).toContain('plan: 1 to add, 0 to change, 0 to destroy');
    expect(lines).toContain(`uid=${RUN_UID} gid=${RUN_UID} pwd=/opt/spacelift/workspace`);
    expect(lines).toEqual(
      expect.arrayContaining([
        `SPACELIFT_RUN_ID=${runId}`,
        `SPACELIFT_POOL_ID=${pool.id}`,
        'SPACELIFT_WORKSPACE_PATH=/opt/spacelift/workspace',
        'SPACELIFT_BINARIES_CACHE_PATH=/opt/spacelift/binaries_cache',
        'run.json',
        'script',
        'kwc',
        '1',
        'to stderr',
        'no Secret in worker',
      ]),
    );
    expect(lines.some((l) => /^SPACELIFT_WORKER_ID=\S+$/.test(l))).toBe(true);
    // The cached tools first on PATH.
    expect(lines.find((l) => l.startsWith('PATH='))).toMatch(/^PATH=\/opt\/spacelift\/binaries_cache\/bin:/);
    // init prepared the workspace from the run; launcher-grpc recorded the phases the worker reported over loopback.
    expect(await kubectlLogs(name, 'init')).toMatch(new RegExp(`init: run ${runId}: script of ${Buffer.byteLength(script)} bytes`));
    const grpc = await kubectlLogs(name, 'launcher-grpc');
    expect(grpc).toContain('launcher-grpc: phase running');
    expect(grpc).toContain('launcher-grpc: phase planning: from the script');
    // The run's output never reaches the controller's own log, even at debug level.
    expect(e2e.controller.lines.join('\n')).not.toContain('1 to add, 0 to change');
  });

  test('a script that exits 1 fails the run with exit code 1, and its output is in the backend', async () => {
    const runId = await submit(pool.id, 'echo "Error: the plan failed"\nexit 1\n');
    const name = (await podOfRun(runId)).metadata?.name ?? '';
    const run = await ended(runId, 'failed');
    expect(run.exitCode).toBe(1);
    const log = await completeLog(runId);
    expect(log).toBe('Error: the plan failed\n');
    expect(log).toBe(await kubectlLogs(name, 'worker'));
  });

  test('?follow=1 streams what the script prints while it runs, and ends with the run', async () => {
    const runId = await submit(pool.id, 'echo "first line"\nuntil [ -e ended ]; do sleep 0.2; done\necho "last line"\n');
    const name = (await podOfRun(runId)).metadata?.name ?? '';
    await waitFor('the run to be running', async () => (await e2e.run(runId)).state === 'running', 60_000);
    const follower = backendLog(runId, true);
    await waitFor('the follower to get the first line while the run runs', () => follower.chunks.join('').includes('first line\n'), 30_000);
    expect((await e2e.run(runId)).state).toBe('running');
    expect(follower.chunks.join('')).not.toContain('last line');
    await kubectlOk(['exec', '-n', e2e.namespace, name, '-c', 'worker', '--', 'touch', '/opt/spacelift/workspace/ended']);
    expect(await follower.done).toBe('first line\nlast line\n');
    await ended(runId, 'finished');
    expect(await kubectlLogs(name, 'worker')).toBe('first line\nlast line\n');
  });

  test("two pools' runs never see each other's logs", async () => {
    const a = await submit(pool.id, 'echo "secret of pool a"');
    const b = await submit(other.id, 'echo "secret of pool b"');
    await Promise.all([ended(a, 'finished'), ended(b, 'finished')]);
    expect(await completeLog(a)).toBe('secret of pool a\n');
    expect(await completeLog(b)).toBe('secret of pool b\n');
  });

  test("the binaries cache is filled once per cache volume: a pool's second run reuses what the first cached", async () => {
    const script = 'kwc cache';
    const first = await submit(cachePool.id, script);
    const firstPod = (await podOfRun(first)).metadata?.name ?? '';
    await ended(first, 'finished');
    expect(await kubectlLogs(firstPod, 'init')).toContain('init: binaries cache /opt/spacelift/binaries_cache filled with kwc');
    const second = await submit(cachePool.id, script);
    const secondPod = (await podOfRun(second)).metadata?.name ?? '';
    await ended(second, 'finished');
    expect(await kubectlLogs(secondPod, 'init')).toMatch(new RegExp(`already holds kwc \\(kwc [0-9.]+\\), cached by run ${first} at .*: reused`));
    // The second run's worker sees the first run's name on what it uses.
    expect(await completeLog(second)).toContain(first);
  });

  test('output beyond the limit is cut with the marker, and the controller goes on serving runs', async () => {
    // 50 MiB: five times the backend's default limit (10 MiB).
    const runId = await submit(pool.id, 'yes "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM" | head -c 52428800');
    await ended(runId, 'finished', 300_000);
    const view = (await e2e.env.admin<{ log: { bytes: number; complete: boolean; truncated: boolean } }>('GET', `/api/runs/${runId}`)).body;
    expect(view.log).toEqual({ bytes: 10 * 1024 * 1024, complete: true, truncated: true });
    const log = await backendLog(runId).done;
    expect(log.endsWith("[log truncated: this run printed more than 10485760 bytes, the backend's limit per run (--max-log-bytes); the rest of its output was not stored]\n")).toBe(true);
    expect(log.startsWith('0123456789abcdef')).toBe(true);
    const next = await submit(pool.id, 'echo "after the big one"');
    await ended(next, 'finished');
    expect(await completeLog(next)).toBe('after the big one\n');
  }, 400_000);

  test('a controller SIGKILLed mid-run, a leader failover and a backend restart mid-run: the log has every line once, in order', async () => {
    const script = 'i=0\nwhile [ ! -e ended ]; do i=$((i+1)); echo "line $i"; sleep 0.1; done\necho "done after $i"\n';
    const runId = await submit(pool.id, script);
    const name = (await podOfRun(runId)).metadata?.name ?? '';
    await waitFor('the run to be running', async () => (await e2e.run(runId)).state === 'running', 60_000);
    const follower = backendLog(runId, true);
    await waitFor('some lines in the backend', () => follower.chunks.join('').includes('line 5\n'), 30_000);
    await e2e.controller.kill('SIGKILL');
    // The script goes on printing while no controller runs.
    await new Promise((r) => setTimeout(r, 2000));
    const args = ['--leader-elect', `--leader-election-namespace=${e2e.namespace}`];
    const first = e2e.startController(args);
    await first.waitForLog('the first to lead', (r) => r.msg === 'became leader');
    const second = e2e.startController(args);
    await second.waitForLog('the second to campaign', (r) => r.msg === 'starting');
    const seen = follower.chunks.join('').length;
    await waitFor('the new leader to relay more lines', () => follower.chunks.join('').length > seen + 20, 60_000);
    await first.kill('SIGKILL');
    await second.waitForLog('the second to take over', (r) => r.msg === 'became leader', 60_000);
    const afterFailover = (await backendLog(runId).done).length;
    await waitFor('the new leader to relay more lines', async () => (await backendLog(runId).done).length > afterFailover + 20, 60_000);
    // The backend restarts: the follower's stream ends with it; what is stored stays, and the relay goes on.
    void follower.done.catch(() => undefined);
    await e2e.env.restartBackend();
    const afterRestart = (await backendLog(runId).done).length;
    await waitFor('the relay to go on after the backend restarted', async () => (await backendLog(runId).done).length > afterRestart + 20, 60_000);
    await kubectlOk(['exec', '-n', e2e.namespace, name, '-c', 'worker', '--', 'touch', '/opt/spacelift/workspace/ended']);
    await ended(runId, 'finished');
    // Read whole after the end: the follower's stream ended when the backend restarted.
    const log = await completeLog(runId);
    expect(log).toBe(await kubectlLogs(name, 'worker'));
    const lines = log.trimEnd().split('\n');
    const last = lines.pop() ?? '';
    const count = Number(/^done after (\d+)$/.exec(last)?.[1]);
    expect(count).toBeGreaterThan(40);
    expect(lines).toEqual(Array.from({ length: count }, (_, i) => `line ${i + 1}`));
  }, 300_000);
});
