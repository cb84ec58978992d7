/**
 * Capped exponential back-off with jitter, shared by the informers and the work queue
 * so that every retry in the controller follows one policy.
 *
 * @module
 */

export interface BackoffPolicy {
  /** Delay after the first failure, in ms. */
  readonly baseMs: number;
  /** Ceiling for the delay, in ms. */
  readonly maxMs: number;
  /**
   * Fraction of the delay that is randomized away (0..1). Jitter keeps many
   * informers or keys that failed together from retrying in lock-step.
   */
  readonly jitter: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry).
 * `random` is injectable so tests can pin the jitter.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  // Exponent capped first so huge attempt counts cannot overflow to Infinity.
  const exp = Math.min(Math.max(attempt, 0), 52);
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** exp);
  return raw * (1 - policy.jitter * random());
}
