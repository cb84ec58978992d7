/**
 * Which finished run Pods of one worker to delete, under the pool's history
 * settings, and when to look again.
 *
 * ## Settings
 *
 * | field | meaning | default |
 * | --- | --- | --- |
 * | `successfulPodsHistoryLimit` | successful Pods kept per worker | 0; unlimited when `keepSuccessfulPods` is true or `successfulPodsHistoryTTL` is set |
 * | `successfulPodsHistoryTTL` | how long a successful Pod is kept after it ends | none |
 * | `failedPodsHistoryLimit` | failed Pods kept per worker | 5; unlimited when `failedPodsHistoryTTL` is set |
 * | `failedPodsHistoryTTL` | how long a failed Pod is kept after it ends | none |
 *
 * A Pod is deleted as soon as either its class's limit or its TTL says so: the
 * newest `limit` Pods are kept (the rest go at once), and of those, each goes
 * when its TTL runs out.
 *
 * ## `keepSuccessfulPods`
 *
 * The seed's switch, kept for compatibility; the history fields are the newer
 * interface and win where both speak. It only changes the default of
 * `successfulPodsHistoryLimit`: absent or false, successful Pods are deleted
 * when their run ends (limit 0); true, they are kept (no limit). An explicit
 * `successfulPodsHistoryLimit` applies whatever `keepSuccessfulPods` says, and
 * `successfulPodsHistoryTTL` applies in both cases. Setting only a TTL keeps
 * successful Pods until it runs out (a TTL with a limit of 0 would mean
 * nothing), mirroring how a failed TTL lifts the failed limit's default of 5.
 *
 * ## What is counted
 *
 * Counted per worker: pass the run Pods of one Worker. Pods that are pending
 * or running are never returned and do not count. Pass only Pods whose
 * outcome has been reported to the backend, and leave out Pods already being
 * deleted.
 *
 * @module
 */
import type { WorkerPoolSpec } from '../../api/types.js';
import { DurationError, parseDurationNs } from '../../runtime/duration.js';

/** Failed run Pods kept per worker when neither `failedPodsHistoryLimit` nor `failedPodsHistoryTTL` is set. */
export const DEFAULT_FAILED_PODS_HISTORY_LIMIT = 5;

/** A history setting of the pool cannot be used; cleanup waits until it is fixed. */
export class HistoryConfigError extends Error {
  constructor(
    readonly field: string,
    readonly value: unknown,
    problem: string,
  ) {
    super(`invalid ${field}: ${JSON.stringify(value)} ${problem}`);
    this.name = 'HistoryConfigError';
  }
}

/** A run Pod of the worker, as the reconciler sees it. */
export type HistoryPod =
  | { readonly name: string; readonly result: 'succeeded' | 'failed'; readonly finishedAt: Date }
  | { readonly name: string; readonly result: 'pending' | 'running' };

export interface ClassPolicy {
  /** Most Pods kept; `undefined` is no limit. */
  readonly limit?: number;
  /** How long a Pod is kept after it ends; `undefined` is forever. */
  readonly ttlMs?: number;
}

export interface HistoryPolicy {
  readonly successful: ClassPolicy;
  readonly failed: ClassPolicy;
}

export interface HistoryPlan {
  /** Names of Pods to delete now: failed ones first, each class oldest first. */
  readonly delete: readonly string[];
  /** When the next kept Pod's TTL runs out, if any has one. */
  readonly nextExpiryAt?: Date;
  /** `nextExpiryAt - now`, for the reconciler's `requeueAfter`. */
  readonly requeueAfterMs?: number;
}

function limitOf(field: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 0) throw new HistoryConfigError(field, v, 'must be a whole number, 0 or more');
  return v;
}

function ttlOf(field: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  let ns: bigint;
  try {
    ns = parseDurationNs(v.trim());
  } catch (err) {
    if (err instanceof DurationError) throw new HistoryConfigError(field, v, `is not a Go duration such as "24h" or "1h30m" (${err.message})`);
    throw err;
  }
  if (ns < 0n) throw new HistoryConfigError(field, v, 'must not be negative');
  return Number(ns / 1_000_000n);
}

/**
 * The effective history policy of a pool (defaults in the module documentation).
 *
 * @throws HistoryConfigError for a negative or fractional limit or an unparseable or negative TTL
 */
export function historyPolicy(spec: WorkerPoolSpec): HistoryPolicy {
  const successfulTtl = ttlOf('successfulPodsHistoryTTL', spec.successfulPodsHistoryTTL);
  const failedTtl = ttlOf('failedPodsHistoryTTL', spec.failedPodsHistoryTTL);
  const successfulLimit =
    limitOf('successfulPodsHistoryLimit', spec.successfulPodsHistoryLimit) ??
    (spec.keepSuccessfulPods === true || successfulTtl !== undefined ? undefined : 0);
  const failedLimit =
    limitOf('failedPodsHistoryLimit', spec.failedPodsHistoryLimit) ??
    (failedTtl !== undefined ? undefined : DEFAULT_FAILED_PODS_HISTORY_LIMIT);

  const cls = (limit: number | undefined, ttlMs: number | undefined): ClassPolicy => {
    const out: { limit?: number; ttlMs?: number } = {};
    if (limit !== undefined) out.limit = limit;
    if (ttlMs !== undefined) out.ttlMs = ttlMs;
    return out;
  };
  return { successful: cls(successfulLimit, successfulTtl), failed: cls(failedLimit, failedTtl) };
}

interface Finished {
  readonly name: string;
  readonly finishedAt: Date;
}

function planClass(pods: readonly Finished[], policy: ClassPolicy, now: number): { delete: string[]; nextExpiry?: number } {
  // Newest first; ties broken by name so the plan is stable.
  const sorted = [...pods].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime() || (a.name < b.name ? 1 : -1));
  const keepCount = policy.limit ?? sorted.length;
  const del: Finished[] = sorted.slice(keepCount);
  let nextExpiry: number | undefined;
  for (const p of sorted.slice(0, keepCount)) {
    if (policy.ttlMs === undefined) continue;
    const expiry = p.finishedAt.getTime() + policy.ttlMs;
    if (expiry <= now) del.push(p);
    else if (nextExpiry === undefined || expiry < nextExpiry) nextExpiry = expiry;
  }
  del.sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime() || (a.name < b.name ? -1 : 1));
  const out: { delete: string[]; nextExpiry?: number } = { delete: del.map((p) => p.name) };
  if (nextExpiry !== undefined) out.nextExpiry = nextExpiry;
  return out;
}

/**
 * Plans the cleanup of one worker's finished run Pods.
 *
 * @param pods the worker's run Pods; pending and running ones are ignored
 * @param spec the pool's spec (history fields and `keepSuccessfulPods`)
 * @throws HistoryConfigError when a history setting is invalid (nothing is deleted then)
 */
export function planPodHistory(pods: readonly HistoryPod[], spec: WorkerPoolSpec, now: Date): HistoryPlan {
  const policy = historyPolicy(spec);
  const succeeded: Finished[] = [];
  const failed: Finished[] = [];
  for (const p of pods) {
    if (p.result === 'succeeded') succeeded.push(p);
    else if (p.result === 'failed') failed.push(p);
  }
  const t = now.getTime();
  const f = planClass(failed, policy.failed, t);
  const s = planClass(succeeded, policy.successful, t);
  const next = [f.nextExpiry, s.nextExpiry].filter((x): x is number => x !== undefined);
  const out: { delete: string[]; nextExpiryAt?: Date; requeueAfterMs?: number } = { delete: [...f.delete, ...s.delete] };
  if (next.length > 0) {
    const at = Math.min(...next);
    out.nextExpiryAt = new Date(at);
    out.requeueAfterMs = at - t;
  }
  return out;
}
