/**
 * Runs that carry work, and their logs, in the reference backend (issue 16):
 * a run's script (validated, kept on disk, named by the schedule, served to
 * its pool's key only), its log appended at byte offsets (repeats add
 * nothing, gaps and differing bytes are refused), cut at the limit with a
 * marker, kept across restarts, and streamed to followers.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_SCRIPT_BYTES, TerminalBackendError, type ScheduleMessage } from '../../src/protocol/index.js';
import { connectWorker, createPool, registerWorker, runState, startEnv, waitFor, type Env, type Pool, type TestWorker } from './backend-harness.js';

const LIMIT = 1000;

/** GET /api/runs/<id>/logs as a follower reads it: every chunk with the time it arrived. */
function followLog(env: Env, runId: string): { chunks: { at: number; text: string }[]; done: Promise<string> } {
  const chunks: { at: number; text: string }[] = [];
  const done = new Promise<string>((resolve, reject) => {
    const req = https.request(new URL(`/api/runs/${runId}/logs?follow=1`, env.backend.apiUrl), { ca: env.backend.caPem, headers: { authorization: `Bearer ${env.backend.adminToken}` } }, (res) => {
      res.on('data', (c: Buffer) => chunks.push({ at: Date.now(), text: c.toString('utf8') }));
      res.on('end', () => resolve(chunks.map((c) => c.text).join('')));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { chunks, done };
}

async function logText(env: Env, runId: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https.get(new URL(`/api/runs/${runId}/logs`, env.backend.apiUrl), { ca: env.backend.caPem, headers: { authorization: `Bearer ${env.backend.adminToken}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('run scripts and logs in the backend', () => {
  let env: Env;
  let pool: Pool;
  let other: Pool;
  let worker: TestWorker;

  beforeAll(async () => {
    env = await startEnv('embedded', { maxLogBytes: LIMIT, defaultRunnerImage: 'localhost/runner:1', defaultLauncherImage: 'localhost/launcher:1' });
    pool = await createPool(env, 'logs');
    other = await createPool(env, 'other');
    worker = await connectWorker(pool, await registerWorker(pool));
    await worker.conn.setState('idle');
  });
  afterAll(async () => {
    await worker?.conn.close();
    pool?.client.close();
    other?.client.close();
    await env?.close();
  });

  /** Submits a run and waits for the worker to accept its schedule. */
  async function scheduledRun(body: Record<string, unknown> = {}): Promise<{ id: string; schedule: ScheduleMessage }> {
    const res = await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id, ...body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = res.body.id;
    const schedule = await waitFor('the schedule', () => worker.received.find((m): m is ScheduleMessage => m.type === 'schedule' && m.runId === id));
    await waitFor('the run to be accepted', async () => (await runState(env, id)).state === 'preparing');
    return { id, schedule };
  }

  async function endRun(id: string): Promise<void> {
    await worker.conn.sendRunStatus({ runId: id, status: 'finished', exitCode: 0 });
    await waitFor('the run to end', async () => (await runState(env, id)).state === 'finished');
  }

  test('a script travels by reference: the schedule names its SHA-256 and size, the pool key fetches its bytes, another pool gets 404', async () => {
    const script = 'echo "héllo from the script"\nexit 0\n';
    const { id, schedule } = await scheduledRun({ script });
    const bytes = Buffer.from(script, 'utf8');
    expect(schedule.script).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length });
    expect(JSON.stringify(schedule)).not.toContain('héllo');
    expect((await pool.client.runScript(id)).equals(bytes)).toBe(true);
    // On disk, beside the state (snapshot and journal), not in it.
    expect(await readFile(path.join(env.dataDir, 'runs', id, 'script'), 'utf8')).toBe(script);
    const state = (await readFile(path.join(env.dataDir, 'state.json'), 'utf8')) + (await readFile(path.join(env.dataDir, 'state.journal'), 'utf8'));
    expect(state).toContain(id);
    expect(state).not.toContain('héllo');
    const err = await other.client.runScript(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as TerminalBackendError).status).toBe(404);
    expect((err as Error).message).toContain(`run "${id}" does not exist in pool ${other.id}`);
    const view = await env.admin<{ script: unknown; log: unknown }>('GET', `/api/runs/${id}`);
    expect(view.body.script).toEqual(schedule.script);
    expect(view.body.log).toEqual({ bytes: 0, complete: false, truncated: false });
    await endRun(id);
  });

  test('a 256 KiB script is accepted; a bad one is a 400 naming the field and the problem', async () => {
    const big = `#${'x'.repeat(MAX_SCRIPT_BYTES - 2)}\n`;
    expect(Buffer.byteLength(big)).toBe(MAX_SCRIPT_BYTES);
    const { id, schedule } = await scheduledRun({ script: big });
    expect(schedule.script?.bytes).toBe(MAX_SCRIPT_BYTES);
    expect((await pool.client.runScript(id)).length).toBe(MAX_SCRIPT_BYTES);
    await endRun(id);

    const refused = async (script: unknown): Promise<string> => {
      const res = await env.admin<{ error: string; code: string }>('POST', '/api/runs', { poolId: pool.id, script });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('bad-request');
      return res.body.error;
    };
    expect(await refused(`${big}x`)).toBe(`field "script" is ${MAX_SCRIPT_BYTES + 1} bytes, more than ${MAX_SCRIPT_BYTES} (256 KiB)`);
    expect(await refused('é'.repeat(MAX_SCRIPT_BYTES / 2 + 1))).toMatch(/^field "script" is 262146 bytes, more than 262144/);
    expect(await refused(42)).toBe('field "script" must be a string of shell text, got number');
    expect(await refused(['echo'])).toBe('field "script" must be a string of shell text, got array');
    expect(await refused('  \n')).toMatch(/^field "script" must not be empty/);
    expect(await refused('echo a\u0000b')).toMatch(/^field "script" contains a NUL character at position 6/);
    expect(await refused('echo \ud800')).toMatch(/^field "script" is not valid Unicode text/);
  });

  test('log appends at byte offsets: repeats add nothing, a gap or differing bytes is a 409, the follower gets it live and ends at completion', async () => {
    const { id } = await scheduledRun({ script: 'true' });
    const follower = followLog(env, id);
    expect(await pool.client.appendLog(id, 0, Buffer.from('line 1\n'))).toEqual({ length: 7, complete: false, truncated: false, limit: LIMIT });
    await waitFor('the follower to get the first line', () => follower.chunks.some((c) => c.text.includes('line 1')));
    // The same bytes again (a relay that did not hear the answer), and an overlap with new bytes after it.
    expect((await pool.client.appendLog(id, 0, Buffer.from('line 1\n'))).length).toBe(7);
    expect((await pool.client.appendLog(id, 5, Buffer.from('1\nline 2\n'))).length).toBe(14);
    const gap = await pool.client.appendLog(id, 20, Buffer.from('x')).catch((e: unknown) => e);
    expect((gap as TerminalBackendError).status).toBe(409);
    expect((gap as Error).message).toContain('holds 14 bytes; an append at byte 20 would leave a gap');
    const differ = await pool.client.appendLog(id, 7, Buffer.from('LINE 2\n')).catch((e: unknown) => e);
    expect((differ as TerminalBackendError).status).toBe(409);
    expect((differ as Error).message).toContain('bytes 7-13 of the log of run');
    // Another pool's key cannot read or write it.
    expect(((await other.client.appendLog(id, 14, Buffer.from('evil\n')).catch((e: unknown) => e)) as TerminalBackendError).status).toBe(404);
    expect(((await other.client.logState(id).catch((e: unknown) => e)) as TerminalBackendError).status).toBe(404);
    const early = await pool.client.completeLog(id, 3).catch((e: unknown) => e);
    expect((early as TerminalBackendError).status).toBe(409);
    expect(await pool.client.completeLog(id, 14)).toEqual({ length: 14, complete: true, truncated: false, limit: LIMIT });
    expect(await follower.done).toBe('line 1\nline 2\n');
    const late = await pool.client.appendLog(id, 14, Buffer.from('after\n')).catch((e: unknown) => e);
    expect((late as Error).message).toContain('is complete at 14 bytes');
    expect(await logText(env, id)).toBe('line 1\nline 2\n');
    await endRun(id);
  });

  test('a log longer than the limit is cut there with a marker; the cut log is complete; both survive a backend restart', async () => {
    const { id } = await scheduledRun({ script: 'yes' });
    const line = 'y'.repeat(99) + '\n';
    let offset = 0;
    let state;
    do {
      state = await pool.client.appendLog(id, offset, Buffer.from(line.repeat(3)));
      offset += line.length * 3;
    } while (!state.complete);
    expect(state).toEqual({ length: LIMIT, complete: true, truncated: true, limit: LIMIT });
    const text = await logText(env, id);
    expect(text.slice(0, LIMIT)).toBe(line.repeat(10));
    expect(text.slice(LIMIT)).toBe(`[log truncated: this run printed more than ${LIMIT} bytes, the backend's limit per run (--max-log-bytes); the rest of its output was not stored]\n`);
    // A relay that goes on after the cut stores nothing more and is told the log is complete.
    expect((await pool.client.appendLog(id, LIMIT, Buffer.from('more\n'))).complete).toBe(true);
    await endRun(id);

    const { id: open } = await scheduledRun({ script: 'true' });
    await pool.client.appendLog(open, 0, Buffer.from('before the restart\n'));
    await env.restartBackend();
    // Nothing stored is lost, nothing is stored twice, a cut log keeps one marker.
    expect(await pool.client.logState(open)).toEqual({ length: 19, complete: false, truncated: false, limit: LIMIT });
    expect((await pool.client.appendLog(open, 0, Buffer.from('before the restart\nafter it\n'))).length).toBe(28);
    expect(await logText(env, open)).toBe('before the restart\nafter it\n');
    expect(await logText(env, id)).toBe(text);
    const view = await env.admin<{ log: unknown }>('GET', `/api/runs/${id}`);
    expect(view.body.log).toEqual({ bytes: LIMIT, complete: true, truncated: true });
    await endRun(open);
  });

  test('a follower of a run that ends without a complete log stops when the run ends', async () => {
    const { id } = await scheduledRun({ script: 'true' });
    await pool.client.appendLog(id, 0, Buffer.from('partial'));
    const follower = followLog(env, id);
    await waitFor('the follower to get what is there', () => follower.chunks.length > 0);
    await worker.conn.sendRunStatus({ runId: id, status: 'failed', reason: 'the run Pod was deleted before the run ended' });
    expect(await follower.done).toBe('partial');
  });

  test('a log is written only for a run sent to a worker', async () => {
    const queued = await env.admin<{ id: string }>('POST', '/api/runs', { poolId: other.id, script: 'true' });
    const err = await other.client.appendLog(queued.body.id, 0, Buffer.from('x')).catch((e: unknown) => e);
    expect((err as TerminalBackendError).status).toBe(409);
    expect((err as Error).message).toContain('has not been sent to a worker');
  });
});
