import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/runtime/backoff.js';
import {
  RetryLaterError,
  TerminalError,
  WorkQueue,
  type Reconcile,
  type ReconcileReport,
} from '../../src/runtime/queue.js';

/** Resolves when `cond` holds; polls because the queue runs on timers. */
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const queues: WorkQueue[] = [];
function makeQueue(reconcile: Reconcile, concurrency = 2, reports: ReconcileReport[] = []): WorkQueue {
  const q = new WorkQueue(reconcile, {
    name: 'test',
    concurrency,
    backoff: { baseMs: 5, maxMs: 40, jitter: 0 },
    onReconciled: (r) => reports.push(r),
  });
  queues.push(q);
  return q;
}

afterEach(async () => {
  await Promise.all(queues.splice(0).map((q) => q.shutdown(200)));
});

describe('WorkQueue', () => {
  it('deduplicates keys added while queued', async () => {
    const gate = deferred();
    const seen: string[] = [];
    const q = makeQueue(async (key) => {
      seen.push(key);
      if (key === 'blocker') await gate.promise;
    }, 1);
    q.add('blocker');
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.depth).toBe(2);
    gate.resolve();
    await until(() => seen.length === 3 && q.inFlight === 0);
    expect(seen).toEqual(['blocker', 'a', 'b']);
  });

  it('never runs one key twice at once, and re-runs a key added while it ran', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const gate = deferred();
    const q = makeQueue(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      if (runs === 1) await gate.promise;
      running--;
    }, 4);
    q.add('k');
    await until(() => q.inFlight === 1);
    q.add('k');
    q.add('k');
    expect(q.depth).toBe(0);
    gate.resolve();
    await until(() => runs === 2 && q.inFlight === 0);
    expect(maxRunning).toBe(1);
  });

  it('runs different keys concurrently up to the limit', async () => {
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    const q = makeQueue(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate.promise;
      running--;
    }, 2);
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await until(() => q.inFlight === 2);
    expect(q.depth).toBe(2);
    gate.resolve();
    await until(() => q.inFlight === 0 && q.depth === 0);
    expect(maxRunning).toBe(2);
  });

  it('backs off exponentially on failure and forgets on success', async () => {
    const attempts: number[] = [];
    const reports: ReconcileReport[] = [];
    const q = makeQueue(
      async (_key, ctx) => {
        attempts.push(ctx.attempt);
        if (attempts.length <= 3) throw new Error('flaky');
      },
      1,
      reports,
    );
    q.add('k');
    await until(() => reports.length === 4);
    expect(attempts).toEqual([0, 1, 2, 3]);
    expect(reports.map((r) => [r.outcome, r.delayMs])).toEqual([
      ['retry', 5],
      ['retry', 10],
      ['retry', 20],
      ['success', undefined],
    ]);
    expect(q.failuresOf('k')).toBe(0);
  });

  it('does not retry terminal errors', async () => {
    const reports: ReconcileReport[] = [];
    let runs = 0;
    const q = makeQueue(
      async () => {
        runs++;
        throw new TerminalError('bad spec');
      },
      1,
      reports,
    );
    q.add('k');
    await until(() => reports.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(1);
    expect(reports[0]?.outcome).toBe('terminal');
    expect(q.delayedCount).toBe(0);
  });

  it('retries RetryLaterError after its own delay without growing the back-off', async () => {
    const reports: ReconcileReport[] = [];
    let runs = 0;
    const q = makeQueue(
      async () => {
        runs++;
        if (runs <= 2) throw new RetryLaterError('backend down', 7);
      },
      1,
      reports,
    );
    q.add('k');
    await until(() => reports.length === 3);
    expect(reports.map((r) => r.outcome)).toEqual(['retryLater', 'retryLater', 'success']);
    expect(reports.slice(0, 2).map((r) => r.delayMs)).toEqual([7, 7]);
  });

  it('requeues after requeueAfter', async () => {
    const reports: ReconcileReport[] = [];
    let runs = 0;
    const q = makeQueue(
      async () => {
        runs++;
        return runs === 1 ? { requeueAfter: 10 } : {};
      },
      1,
      reports,
    );
    q.add('k');
    await until(() => reports.length === 2);
    expect(reports.map((r) => r.outcome)).toEqual(['requeue', 'success']);
  });

  it('keeps the earliest of several delays', async () => {
    const q = makeQueue(async () => undefined);
    q.addAfter('k', 60_000);
    q.addAfter('k', 5);
    q.addAfter('k', 30_000);
    expect(q.delayedCount).toBe(1);
    await until(() => q.delayedCount === 0 && q.inFlight === 0);
  });

  it('shutdown waits for in-flight reconciles, aborts their signal and drops the rest', async () => {
    const gate = deferred();
    let aborted = false;
    const seen: string[] = [];
    const q = makeQueue(async (key, ctx) => {
      seen.push(key);
      await gate.promise;
      aborted = ctx.signal.aborted;
    }, 1);
    q.add('a');
    q.add('b');
    q.addAfter('c', 5);
    await until(() => q.inFlight === 1);
    const done = q.shutdown(5000);
    q.add('d');
    gate.resolve();
    await expect(done).resolves.toBe(true);
    expect(aborted).toBe(true);
    expect(seen).toEqual(['a']);
    expect(q.depth + q.delayedCount).toBe(0);
  });

  it('shutdown reports a reconcile that does not finish in time', async () => {
    const q = makeQueue(() => new Promise<void>(() => undefined));
    q.add('stuck');
    await until(() => q.inFlight === 1);
    await expect(q.shutdown(20)).resolves.toBe(false);
  });
});

describe('backoffDelay', () => {
  const policy = { baseMs: 100, maxMs: 60_000, jitter: 0.2 };
  it('doubles up to the cap', () => {
    const noJitter = (): number => 0;
    expect([0, 1, 2, 3].map((a) => backoffDelay(policy, a, noJitter))).toEqual([100, 200, 400, 800]);
    expect(backoffDelay(policy, 20, noJitter)).toBe(60_000);
    expect(backoffDelay(policy, 10_000, noJitter)).toBe(60_000);
  });
  it('jitters down by at most the jitter fraction', () => {
    expect(backoffDelay(policy, 0, () => 1)).toBeCloseTo(80);
    expect(backoffDelay(policy, 0, () => 0.5)).toBeCloseTo(90);
  });
});
