/**
 * The reference backend's command-line client (issue 16), run as a user runs
 * it (`npm run -s backend -- <command>`, here the same entry point with
 * node), against a real backend over HTTPS: a pool whose credential files
 * the README's Secret command reads, a run from a script file, its log, and
 * errors that name the problem.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { repoRoot } from '../../src/cluster/binaries.js';
import { parsePoolToken, RetryableBackendError, type ScheduleMessage } from '../../src/protocol/index.js';
import { BackendClient } from '../../src/protocol/client.js';
import { connectWorker, registerWorker, startEnv, waitFor, type Env, type Pool, type TestWorker } from './backend-harness.js';

/** A worker API call, retried as the controller retries one (a kept-alive connection the server closed meanwhile is retryable). */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof RetryableBackendError) || attempt === 5) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the backend command-line client', () => {
  let env: Env;
  let cwd: string;

  /** The client, started where the user is (INIT_CWD, as npm sets it). */
  function cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<Result> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(repoRoot, 'src', 'backend', 'main.ts'), ...args],
        { cwd: repoRoot, env: { ...process.env, INIT_CWD: cwd, KWC_BACKEND_DIR: env.dataDir, ...extraEnv }, timeout: 60_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr }),
      );
    });
  }

  beforeAll(async () => {
    env = await startEnv('embedded', { defaultRunnerImage: 'localhost/runner:1', defaultLauncherImage: 'localhost/launcher:1' });
    cwd = await mkdtemp(path.join(os.tmpdir(), 'kwc-cli-'));
  });
  afterAll(async () => {
    await env?.close();
    if (cwd !== undefined) await rm(cwd, { recursive: true, force: true });
  });

  test('--help on every command', async () => {
    const main = await cli(['--help']);
    expect(main.code).toBe(0);
    for (const command of ['pools create', 'pools list', 'pools show', 'runs submit', 'runs list', 'runs show', 'runs stop', 'logs']) {
      expect(main.stdout).toContain(command);
      const res = await cli([...command.split(' '), '--help']);
      expect(res.code, command).toBe(0);
      expect(res.stdout, command).toMatch(new RegExp(`^usage: npm run -s backend -- ${command}`));
    }
  });

  describe('a pool, a run from a script file, its log', () => {
    let poolId: string;
    let pool: Pool;
    let worker: TestWorker;

    afterAll(async () => {
      await worker?.conn.close();
      pool?.client.close();
    });

    test('pools create writes the token and key files the Secret command reads; list and show find the pool', async () => {
      const res = await cli(['pools', 'create', 'cli-pool']);
      expect(res.code, res.stderr).toBe(0);
      poolId = res.stdout.trim();
      expect(poolId).toMatch(/^[0-9A-Za-z]+$/);
      const tokenText = await readFile(path.join(cwd, 'worker-pool.config'), 'utf8');
      const keyPem = await readFile(path.join(cwd, 'key.pem'), 'utf8');
      expect(parsePoolToken(tokenText).poolId).toBe(poolId);
      expect(keyPem).toMatch(/^-----BEGIN (RSA )?PRIVATE KEY-----/);
      expect((await stat(path.join(cwd, 'key.pem'))).mode & 0o777).toBe(0o600);
      expect(res.stderr).toContain('kubectl create secret generic cli-pool-credentials');
      // The files work: the pool's key signs a registration the backend accepts.
      const token = parsePoolToken(tokenText);
      pool = { id: poolId, tokenText, privateKeyB64: Buffer.from(keyPem).toString('base64'), token, privateKeyPem: keyPem, client: new BackendClient({ token, privateKeyPem: keyPem }) };
      worker = await connectWorker(pool, await registerWorker(pool));
      await worker.conn.setState('idle');

      // Not overwritten without --force.
      const again = await cli(['pools', 'create', 'cli-pool']);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('already exist');
      expect(again.stderr).toContain('--force');

      const list = await cli(['pools', 'list']);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(new RegExp(`^${poolId}\\s+cli-pool$`, 'm'));
      const show = await cli(['pools', 'show', poolId]);
      expect(show.stdout).toContain(`pool ${poolId} (cli-pool): 0 run(s) pending, 1 worker(s)`);
    });

    test('runs submit sends the script file; runs list and show, and logs, show what the backend has', async () => {
      const script = 'echo "plan: 2 to add"\n';
      await writeFile(path.join(cwd, 'plan.sh'), script);
      const res = await cli(['runs', 'submit', '--pool', poolId, '--env', 'TF_VAR_x=1', 'plan.sh']);
      expect(res.code, res.stderr).toBe(0);
      const runId = res.stdout.trim();
      const schedule = await waitFor('the schedule', () => worker.received.find((m): m is ScheduleMessage => m.type === 'schedule' && m.runId === runId));
      expect(schedule.env).toEqual({ TF_VAR_x: '1' });
      expect((await retrying(() => pool.client.runScript(runId))).toString('utf8')).toBe(script);

      // The worker relays the output, as the controller does.
      await waitFor('the run to be accepted', async () => (await env.admin<{ state: string }>('GET', `/api/runs/${runId}`)).body.state === 'preparing');
      await worker.conn.sendRunStatus({ runId, status: 'running' });
      await retrying(() => pool.client.appendLog(runId, 0, Buffer.from('plan: 2 to add\n')));
      const follow = cli(['logs', runId, '--follow']);
      await new Promise((r) => setTimeout(r, 1000));
      await retrying(() => pool.client.appendLog(runId, 15, Buffer.from('Apply complete!\n')));
      await retrying(() => pool.client.completeLog(runId, 31));
      await worker.conn.sendRunStatus({ runId, status: 'finished', exitCode: 0 });
      const followed = await follow;
      expect(followed.code, followed.stderr).toBe(0);
      expect(followed.stdout).toBe('plan: 2 to add\nApply complete!\n');

      const logs = await cli(['logs', runId]);
      expect(logs.stdout).toBe('plan: 2 to add\nApply complete!\n');
      await waitFor('the run to be finished', async () => (await env.admin<{ state: string }>('GET', `/api/runs/${runId}`)).body.state === 'finished');
      const list = await cli(['runs', 'list', '--pool', poolId]);
      expect(list.stdout).toMatch(new RegExp(`^${runId}\\s+finished\\s+\\S+\\s+0\\s+31 B`, 'm'));
      const show = await cli(['runs', 'show', runId]);
      expect(show.stdout).toMatch(/^state:\s+finished$/m);
      expect(show.stdout).toMatch(/^exit code:\s+0$/m);
      expect(show.stdout).toMatch(/^log:\s+31 B$/m);
      expect(show.stdout).toMatch(new RegExp(`^script:\\s+${Buffer.byteLength(script)} B, sha256 [0-9a-f]{64}$`, 'm'));
    });

    test('runs stop stops a queued run', async () => {
      await worker.conn.setState('busy');
      const res = await cli(['runs', 'submit', '--pool', poolId, 'plan.sh']);
      const runId = res.stdout.trim();
      const stop = await cli(['runs', 'stop', runId]);
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.stdout).toBe(`run ${runId}: stopped\n`);
      await worker.conn.setState('idle');
    });
  });

  test('errors name the problem: wrong admin token file, unknown pool, unknown run, a missing script file, bad usage, an unreachable backend', async () => {
    const wrong = path.join(cwd, 'wrong-token');
    await writeFile(wrong, 'not-the-admin-token\n');
    const badToken = await cli(['pools', 'list', '--admin-token-file', wrong]);
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toContain(`the backend refused the admin token in ${wrong}`);
    expect(badToken.stderr).not.toContain('not-the-admin-token');

    await writeFile(path.join(cwd, 'ok.sh'), 'true\n');
    const unknown = await cli(['runs', 'submit', '--pool', 'nosuchpool', 'ok.sh']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/nosuchpool.*\(npm run -s backend -- pools list shows the pools\)/);

    const noRun = await cli(['runs', 'show', 'NOSUCHRUN']);
    expect(noRun.code).toBe(1);
    expect(noRun.stderr).toContain('runs list shows the runs');

    const noFile = await cli(['runs', 'submit', '--pool', 'x', 'missing.sh']);
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toContain('cannot read the script missing.sh: no such file');

    const usage = await cli(['runs', 'submit', 'ok.sh']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('runs submit needs --pool <pool-id>');

    const noDir = await cli(['pools', 'list', '--data-dir', path.join(cwd, 'nowhere')]);
    expect(noDir.code).toBe(1);
    expect(noDir.stderr).toMatch(/cannot read the backend's API URL file .*nowhere\/api-url: no such file/);

    const unreachable = await cli(['pools', 'list', '--api-url', 'https://127.0.0.1:9']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('cannot reach the backend at https://127.0.0.1:9');
    expect(unreachable.stderr).toContain('Is it running');
  });
});
