/**
 * At-least-once scheduling: the backend re-sends `schedule` until the worker
 * answers `accepted`, duplicates are harmless, statuses only move forward,
 * and a worker that forgets an accepted run does not stay busy forever.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectWorker, createPool, registerWorker, runState, startEnv, waitFor, workerView, type Env } from './backend-harness.js';

describe('schedule redelivery (embedded broker)', () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv('embedded', { redeliverMs: 100, tickMs: 50 });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('schedule is re-sent until accepted; duplicate and late statuses are ignored', async () => {
    const pool = await createPool(env, 'redeliver');
    const creds = await registerWorker(pool);
    const worker = await connectWorker(pool, creds, { autoAccept: false });
    await waitFor('worker idle', async () => (await workerView(env, pool.id, creds.workerId))?.state === 'idle');
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id, env: { A: '1' }, timeouts: { runSeconds: 60 } })).body.id;
    await waitFor('the same schedule three times', () => worker.received.filter((m) => m.type === 'schedule' && m.runId === run).length >= 3);
    const copies = worker.received.filter((m) => m.type === 'schedule' && m.runId === run);
    expect(new Set(copies.map((m) => JSON.stringify(m))).size).toBe(1);
    expect(copies[0]).toMatchObject({ env: { A: '1' }, timeouts: { runSeconds: 60 } });

    // A worker answering each copy (idempotently) produces duplicate statuses: harmless.
    await worker.conn.sendRunStatus({ runId: run, status: 'accepted' });
    await worker.conn.sendRunStatus({ runId: run, status: 'accepted' });
    await worker.conn.sendRunStatus({ runId: run, status: 'running' });
    await worker.conn.sendRunStatus({ runId: run, status: 'pod-created' });
    await waitFor('running', async () => (await runState(env, run)).state === 'running');
    await worker.conn.sendRunStatus({ runId: run, status: 'failed', reason: 'exit code 3', exitCode: 3 });
    await worker.conn.sendRunStatus({ runId: run, status: 'finished' });
    // A sentinel through the same ordered topic: after it is processed, so are the two above.
    await worker.conn.setState('draining');
    await waitFor('sentinel processed', async () => (await workerView(env, pool.id, creds.workerId))?.state === 'draining');
    expect(await runState(env, run)).toMatchObject({ state: 'failed', reason: 'exit code 3', workerId: creds.workerId });
    await worker.conn.close();
    pool.client.close();
  });

  test('a worker that reports idle while its run is in progress gets the run failed, not stuck busy', async () => {
    const pool = await createPool(env, 'phantom');
    const creds = await registerWorker(pool);
    const worker = await connectWorker(pool, creds);
    await waitFor('worker idle', async () => (await workerView(env, pool.id, creds.workerId))?.state === 'idle');
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    await waitFor('accepted', async () => (await runState(env, run)).state === 'preparing');
    expect((await workerView(env, pool.id, creds.workerId))?.state).toBe('busy');
    // E.g. a controller that lost track of the run's Pod.
    await worker.conn.setState('idle');
    await waitFor('run failed', async () => (await runState(env, run)).state === 'failed');
    expect((await runState(env, run)).reason).toMatch(/reported idle while the run was preparing/);
    expect((await workerView(env, pool.id, creds.workerId))?.state).toBe('idle');
    await worker.conn.close();
    pool.client.close();
  });

  test('stopping a queued run ends it; stopping a running one sends stop until the worker reports', async () => {
    const pool = await createPool(env, 'stop');
    const queued = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    expect((await env.admin<{ state: string }>('POST', `/api/runs/${queued}/stop`)).body.state).toBe('stopped');

    const creds = await registerWorker(pool);
    const worker = await connectWorker(pool, creds);
    const run = (await env.admin<{ id: string }>('POST', '/api/runs', { poolId: pool.id })).body.id;
    await waitFor('accepted', async () => (await runState(env, run)).state === 'preparing');
    await worker.conn.sendRunStatus({ runId: run, status: 'running' });
    await waitFor('running', async () => (await runState(env, run)).state === 'running');
    const res = await env.admin<{ state: string }>('POST', `/api/runs/${run}/stop`);
    expect(res.status).toBe(202);
    await waitFor('stop re-sent', () => worker.received.filter((m) => m.type === 'stop' && m.runId === run).length >= 2);
    await worker.conn.sendRunStatus({ runId: run, status: 'stopped', reason: 'stopped by request' });
    await waitFor('stopped', async () => (await runState(env, run)).state === 'stopped');
    await worker.conn.close();
    pool.client.close();
  });
});
