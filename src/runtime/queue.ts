/**
 * A deduplicating, rate-limited work queue of string keys (usually "namespace/name").
 *
 * The guarantees reconcilers rely on:
 * - a key is queued at most once, however many events mention it;
 * - a key is never reconciled by two workers at once; a key added while it is
 *   being reconciled runs again right after, so no change is missed;
 * - failures back off per key (exponentially, capped) without slowing other keys.
 *
 * @module
 */
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import { silentLogger, type Logger } from './log.js';

/** What a successful reconcile asks for: nothing, or another look after a delay. */
export interface Result {
  /** Reconcile the key again after this many ms (e.g. to notice a timeout). */
  readonly requeueAfter?: number;
}

/** A failure that retrying will not fix (invalid spec, ...). Logged and reported, never retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/**
 * A failure that is expected to clear after a known time (backend unreachable, waiting
 * for another object). Requeued after `delayMs` and does not grow the key's back-off.
 */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryLaterError';
  }
}

/** Context handed to each reconcile. */
export interface ReconcileContext {
  /** Aborted when the queue shuts down; long reconciles should check it between API calls. */
  readonly signal: AbortSignal;
  /** How many times this key has failed in a row (0 on a fresh key). */
  readonly attempt: number;
}

/** Any thrown error other than {@link TerminalError} / {@link RetryLaterError} is retried with back-off. */
export type Reconcile = (key: string, ctx: ReconcileContext) => Promise<Result | void>;

export type Outcome = 'success' | 'requeue' | 'retry' | 'retryLater' | 'terminal';

/** Reported after every reconcile, for metrics. */
export interface ReconcileReport {
  readonly key: string;
  readonly outcome: Outcome;
  readonly durationMs: number;
  readonly error?: unknown;
  /** When the key will run again, if it was requeued. */
  readonly delayMs?: number;
}

export interface WorkQueueOptions {
  /** Used in logs, e.g. "workerpool". */
  readonly name: string;
  /** Reconciles running at once (different keys). Default 2. */
  readonly concurrency?: number;
  /** Per-key failure back-off. Default 100ms doubling to 60s, 20% jitter. */
  readonly backoff?: BackoffPolicy;
  readonly logger?: Logger;
  readonly onReconciled?: (report: ReconcileReport) => void;
}

export const DEFAULT_QUEUE_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 60_000, jitter: 0.2 };

/**
 * The queue and its workers. Workers start with the queue; call {@link WorkQueue.shutdown}
 * to stop.
 */
export class WorkQueue {
  // A Set keeps insertion order, so the ready queue is FIFO and deduplicated at once.
  private readonly ready = new Set<string>();
  private readonly processing = new Set<string>();
  /** Keys added while processing: run again once the current reconcile ends. */
  private readonly dirtyWhileProcessing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly abort = new AbortController();
  private readonly idleWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private readonly concurrency: number;
  private readonly backoff: BackoffPolicy;
  private readonly log: Logger;

  constructor(
    private readonly reconcile: Reconcile,
    private readonly options: WorkQueueOptions,
  ) {
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.backoff = options.backoff ?? DEFAULT_QUEUE_BACKOFF;
    this.log = (options.logger ?? silentLogger).with({ queue: options.name });
  }

  /** Keys waiting to run now (not delayed, not in flight): the queue-depth metric. */
  get depth(): number {
    return this.ready.size;
  }

  /** Keys waiting for a delay (back-off or requeueAfter). */
  get delayedCount(): number {
    return this.delayed.size;
  }

  /** Reconciles currently running. */
  get inFlight(): number {
    return this.processing.size;
  }

  /** Queues `key` to run as soon as a worker is free. Adding a queued key is a no-op. */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirtyWhileProcessing.add(key);
      return;
    }
    this.ready.add(key);
    this.pump();
  }

  /**
   * Queues `key` after `delayMs`. If the key is already waiting for an earlier time,
   * the earlier one wins: a delay is "no later than", never "not before".
   */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /** Resets the key's failure back-off (done automatically after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Consecutive failures of `key`. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * Stops taking keys, drops queued and delayed ones (all state is in the API, so
   * the next start relists and re-queues them), aborts the reconciles' signal and
   * waits for the reconciles in flight to return.
   * @returns true if everything in flight finished within `timeoutMs`.
   */
  async shutdown(timeoutMs = 30_000): Promise<boolean> {
    this.shuttingDown = true;
    this.ready.clear();
    this.dirtyWhileProcessing.clear();
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.abort.abort();
    if (this.processing.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    return result;
  }

  private pump(): void {
    while (this.processing.size < this.concurrency && this.ready.size > 0) {
      const key = this.ready.values().next().value as string;
      this.ready.delete(key);
      this.processing.add(key);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    const started = performance.now();
    const attempt = this.failuresOf(key);
    let report: ReconcileReport;
    try {
      const result = await this.reconcile(key, { signal: this.abort.signal, attempt });
      this.forget(key);
      const after = result?.requeueAfter;
      if (after !== undefined && after > 0) {
        this.addAfter(key, after);
        report = { key, outcome: 'requeue', durationMs: performance.now() - started, delayMs: after };
      } else {
        report = { key, outcome: 'success', durationMs: performance.now() - started };
      }
    } catch (error) {
      report = this.handleFailure(key, error, performance.now() - started);
    } finally {
      this.processing.delete(key);
    }
    this.notify(report);
    if (this.dirtyWhileProcessing.delete(key)) this.ready.add(key);
    if (this.processing.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
    this.pump();
  }

  private handleFailure(key: string, error: unknown, durationMs: number): ReconcileReport {
    const log = this.log.with({ object: key });
    if (this.abort.signal.aborted) {
      // Cancelled by the shutdown: not a failure, and nothing to retry in this process.
      log.debug('reconcile cancelled by shutdown', { error });
      return { key, outcome: 'retry', durationMs, error };
    }
    if (error instanceof TerminalError) {
      this.forget(key);
      log.error('reconcile failed permanently; not retrying until the object changes', { error });
      return { key, outcome: 'terminal', durationMs, error };
    }
    if (error instanceof RetryLaterError) {
      this.addAfter(key, error.delayMs);
      log.info('reconcile deferred', { reason: error.message, delayMs: error.delayMs });
      return { key, outcome: 'retryLater', durationMs, error, delayMs: error.delayMs };
    }
    const failures = this.failuresOf(key) + 1;
    this.failures.set(key, failures);
    const delayMs = backoffDelay(this.backoff, failures - 1);
    this.addAfter(key, delayMs);
    log.warn('reconcile failed; retrying', { error, failures, delayMs: Math.round(delayMs) });
    return { key, outcome: 'retry', durationMs, error, delayMs };
  }

  private notify(report: ReconcileReport): void {
    try {
      this.options.onReconciled?.(report);
    } catch (err) {
      this.log.error('onReconciled hook threw', { error: err });
    }
  }
}
