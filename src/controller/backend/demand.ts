/**
 * The backend's demand for each autoscaled pool (busy workers, pending runs),
 * kept current by a long poll of the pool's stats: a run queued for a pool
 * with no worker, and so no MQTT session to hear of it on, reaches the
 * controller within a round trip. A backend that cannot wait answers at once
 * without a revision; then the demand is polled every FALLBACK_POLL_MS.
 *
 * In memory only: it is an observation, read again after a restart; what the
 * autoscaler decides from it is kept in the pool's status.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isAbort } from '../../runtime/abort.js';
import { backoffDelay } from '../../runtime/backoff.js';
import type { Logger } from '../../runtime/log.js';
import type { BackendApi } from './connector.js';

/** How long one long poll may wait for a change. */
export const LONG_POLL_SECONDS = 25;
/** How often a backend without long polls is asked. */
export const FALLBACK_POLL_MS = 10_000;

export interface PoolDemand {
  readonly busyWorkers: number;
  readonly pendingRuns: number;
  readonly observedAt: Date;
}

interface Watcher {
  readonly client: BackendApi;
  readonly stop: AbortController;
  demand?: PoolDemand;
}

export class DemandWatchers {
  private readonly watchers = new Map<string, Watcher>();

  constructor(
    /** Called when a pool's demand changes (or becomes known or unknown). */
    private readonly onChange: (poolKey: string) => void,
    private readonly log: Logger,
  ) {}

  /** Watches the pool's demand through `client` (restarting when the client changes). Idempotent. */
  ensure(poolKey: string, client: BackendApi): void {
    const existing = this.watchers.get(poolKey);
    if (existing?.client === client) return;
    existing?.stop.abort();
    const watcher: Watcher = { client, stop: new AbortController() };
    this.watchers.set(poolKey, watcher);
    void this.run(poolKey, watcher);
  }

  /** The last demand read, undefined before the first answer and while the backend cannot be read. */
  demandOf(poolKey: string): PoolDemand | undefined {
    return this.watchers.get(poolKey)?.demand;
  }

  stop(poolKey: string): void {
    this.watchers.get(poolKey)?.stop.abort();
    this.watchers.delete(poolKey);
  }

  stopAll(): void {
    for (const key of [...this.watchers.keys()]) this.stop(key);
  }

  private async run(poolKey: string, w: Watcher): Promise<void> {
    const signal = w.stop.signal;
    let revision: string | undefined;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const stats = await w.client.watchPoolStats(revision, LONG_POLL_SECONDS, { signal });
        failures = 0;
        const before = w.demand;
        w.demand = { busyWorkers: stats.workers.busy, pendingRuns: stats.pendingRuns, observedAt: new Date() };
        if (before === undefined || before.busyWorkers !== w.demand.busyWorkers || before.pendingRuns !== w.demand.pendingRuns) this.onChange(poolKey);
        revision = stats.revision;
        if (revision === undefined) await sleep(FALLBACK_POLL_MS, undefined, { signal });
      } catch (err) {
        if (signal.aborted || isAbort(err, signal)) return;
        failures++;
        if (w.demand !== undefined) {
          w.demand = undefined;
          this.onChange(poolKey);
        }
        revision = undefined;
        const delayMs = backoffDelay({ baseMs: 1000, maxMs: 30_000, jitter: 0.2 }, failures - 1);
        this.log.warn('cannot read the pool\'s demand from the backend; retrying', { pool: poolKey, delayMs: Math.round(delayMs), error: err instanceof Error ? err.message : String(err) });
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}
