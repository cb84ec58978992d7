/**
 * The pool's size from the backend's demand (spec.autoscaling). Pure: the
 * state it needs lives in the pool's status, so every decision is tested
 * without a cluster and a restarted controller goes on where it was.
 *
 * - demand = busy workers + pending runs, within min and max;
 * - up at once;
 * - down only after `scaleDownDelay` of lower demand, and then to the highest
 *   demand seen during the delay (not to a momentary dip); demand back at or
 *   above the current size cancels the pending scale-down;
 * - never below the busy workers (unless maxPoolSize is), so a scale-down
 *   takes idle workers only.
 */
import { AutoscalingReason } from '../../api/conditions.js';
import type { WorkerPoolSpec, WorkerPoolStatus } from '../../api/types.js';
import { parseDuration } from '../../runtime/duration.js';

export const DEFAULT_SCALE_DOWN_DELAY = '5m';

export type AutoscalingSpec = NonNullable<WorkerPoolSpec['autoscaling']>;
export type AutoscalingStatus = NonNullable<WorkerPoolStatus['autoscaling']>;

export interface Demand {
  readonly busyWorkers: number;
  readonly pendingRuns: number;
  readonly observedAt: Date;
}

export interface Recommendation {
  /** The pool size to work towards. */
  readonly size: number;
  /** What to write to status.autoscaling. */
  readonly status: AutoscalingStatus;
  /** The Autoscaling condition's reason and message. */
  readonly reason: (typeof AutoscalingReason)[keyof typeof AutoscalingReason];
  readonly message: string;
  /** Set when the recommendation changed: the Event to record. */
  readonly event?: string;
  /** Look again after this long (a pending scale-down comes due). */
  readonly recheckAfterMs?: number;
}

const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * @param current the recommendation in force: status.autoscaling.recommendation,
 *   or for a pool that just turned autoscaling on, its present size
 * @param demand undefined when the backend could not be read
 */
export function recommend(spec: AutoscalingSpec, previous: AutoscalingStatus | undefined, current: number, demand: Demand | undefined, now: Date): Recommendation {
  const { minPoolSize: min, maxPoolSize: max } = spec;
  const clamp = (n: number): number => Math.min(max, Math.max(min, n));
  const size = clamp(current);
  if (demand === undefined) {
    return {
      size,
      status: { ...previous, recommendation: size },
      reason: AutoscalingReason.DemandUnknown,
      message: `the backend's demand cannot be read; keeping ${size} worker(s)`,
    };
  }
  const wanted = clamp(demand.busyWorkers + demand.pendingRuns);
  // Not when it was read: the status would change with every read, costing a write per read while nothing changes.
  const seen = { pendingRuns: demand.pendingRuns, busyWorkers: demand.busyWorkers };
  const described = `${demand.busyWorkers} busy, ${demand.pendingRuns} pending`;
  const changed = (to: number, why: string): Recommendation => ({
    size: to,
    status: { recommendation: to, ...seen, lastScaleTime: iso(now) },
    reason: to > size ? AutoscalingReason.ScaledUp : AutoscalingReason.ScaledDown,
    message: `${to} worker(s) for ${described} (min ${min}, max ${max})${why}`,
    event: `scaled ${to > size ? 'up' : 'down'} from ${size} to ${to} worker(s): ${described}${why}`,
  });

  if (wanted > size) return changed(wanted, wanted === max && demand.busyWorkers + demand.pendingRuns > max ? ', at the maximum' : '');
  if (wanted === size) {
    const atMax = demand.busyWorkers + demand.pendingRuns > max;
    return {
      size,
      status: { recommendation: size, ...seen, lastScaleTime: previous?.lastScaleTime },
      reason: atMax ? AutoscalingReason.AtMaximum : AutoscalingReason.Stable,
      message: atMax ? `${size} worker(s), the maximum, for ${described}` : `${size} worker(s) for ${described} (min ${min}, max ${max})`,
    };
  }

  // Lower demand: wait out the delay, remembering the highest demand meanwhile.
  const delayMs = parseDuration(spec.scaleDownDelay ?? DEFAULT_SCALE_DOWN_DELAY);
  const since = previous?.scaleDownPendingSince === undefined ? now : new Date(previous.scaleDownPendingSince);
  const target = Math.max(wanted, previous?.scaleDownPendingSince === undefined ? wanted : (previous.scaleDownTarget ?? wanted));
  const dueInMs = since.getTime() + delayMs - now.getTime();
  if (dueInMs <= 0) return changed(target, `, after ${spec.scaleDownDelay ?? DEFAULT_SCALE_DOWN_DELAY} of lower demand`);
  return {
    size,
    status: { recommendation: size, ...seen, scaleDownPendingSince: iso(since), scaleDownTarget: target, lastScaleTime: previous?.lastScaleTime },
    reason: AutoscalingReason.ScaleDownPending,
    message: `${described}: down to ${target} worker(s) at ${iso(new Date(since.getTime() + delayMs))} unless demand comes back`,
    recheckAfterMs: dueInMs,
  };
}
