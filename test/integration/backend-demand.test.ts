/**
 * The pool's demand channel (issue 20): a long poll of the pool's stats that
 * answers as soon as the demand (pending runs, busy workers) changes, so a
 * run submitted to a pool with no worker reaches the controller at once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TerminalBackendError } from '../../src/protocol/index.js';
import { createPool, startEnv, type Env, type Pool } from './backend-harness.js';

describe('the pool stats long poll', () => {
  let env: Env;
  let pool: Pool;

  beforeAll(async () => {
    env = await startEnv('embedded');
    pool = await createPool(env, 'demand');
  });
  afterAll(async () => {
    pool?.client.close();
    await env?.close();
  });

  test('answers at once without a revision, and carries one', async () => {
    const stats = await pool.client.watchPoolStats(undefined, 30);
    expect(stats).toMatchObject({ poolId: pool.id, pendingRuns: 0, revision: '0/0' });
  });

  test('waits while nothing changes, and answers with the new demand when a run is submitted', async () => {
    const first = await pool.client.watchPoolStats(undefined, 30);
    let answered = false;
    const waiting = pool.client.watchPoolStats(first.revision, 30).then((s) => {
      answered = true;
      return s;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    const run = await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id });
    expect(run.status).toBe(201);
    const next = await waiting;
    expect(next.pendingRuns).toBe(1);
    expect(next.revision).not.toBe(first.revision);
    await env.admin('POST', `/api/runs/${run.body.id}/stop`);
  });

  test('answers with the same revision once the wait is over', async () => {
    const now = await pool.client.watchPoolStats(undefined, 30);
    const later = await pool.client.watchPoolStats(now.revision, 1);
    expect(later.revision).toBe(now.revision);
  });

  test('refuses a wait longer than a minute, naming the value', async () => {
    const now = await pool.client.watchPoolStats(undefined, 30);
    const err = await pool.client.watchPoolStats(now.revision, 61).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as Error).message).toContain('timeoutSeconds must be a whole number from 1 to 60, got "61"');
  });
});
