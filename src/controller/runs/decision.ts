/**
 * What the backend should be told of a run, from its Pod alone. Pure, so
 * every branch is tested without a cluster, and one definition serves both
 * the reports (`controller.ts`) and the question a new schedule asks: is the
 * worker's previous run over?
 */
import { ANNOTATION_STOP_REQUESTED } from '../../api/constants.js';
import type { RunStatus } from '../../protocol/index.js';
import { classifyRunPod, disruptionOf, stuckVerdict, type RunPodView } from './pod-status.js';

export const TERMINAL: ReadonlySet<RunStatus> = new Set(['finished', 'failed', 'stopped']);

export interface RunDecision {
  readonly status: RunStatus;
  readonly reason?: string;
  readonly exitCode?: number;
  /** Delete the Pod once this is reported (a stuck Pod frees its worker). */
  readonly deletePod?: boolean;
  /** The reason should be completed with the Pod's recent events (a Pod that cannot start). */
  readonly withEvents?: boolean;
  /** Look again after this long (a stuck Pod's grace runs out). */
  readonly recheckAfterMs?: number;
}

export interface RunPodWithMeta extends RunPodView {
  readonly metadata?: RunPodView['metadata'] & {
    readonly deletionTimestamp?: string | Date;
    readonly deletionGracePeriodSeconds?: number;
    readonly annotations?: Readonly<Record<string, string>>;
  };
}

const DELETED_REASON = 'the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)';

/**
 * Whether a deleted Pod's `worker` ended because of the deletion (the
 * kubelet's SIGTERM), not before it. The deletion was asked for at
 * `deletionTimestamp` minus the grace period; `finishedAt` has whole
 * seconds, hence the second of slack. Unknown times count as "because of".
 */
function endedByDeletion(pod: RunPodWithMeta): boolean {
  const deletion = pod.metadata?.deletionTimestamp;
  if (deletion === undefined) return false;
  const finishedAt = pod.status?.containerStatuses?.find((c) => c.name === 'worker')?.state?.terminated?.finishedAt;
  if (finishedAt === undefined) return true;
  const requested = new Date(deletion).getTime() - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
  return new Date(finishedAt).getTime() >= requested - 1000;
}

export function decideRun(pod: RunPodWithMeta, now: Date, stuckGraceMs: number): RunDecision {
  const status = classifyRunPod(pod, now);
  const stopRequested = pod.metadata?.annotations?.[ANNOTATION_STOP_REQUESTED] === 'true';
  const deleting = pod.metadata?.deletionTimestamp !== undefined;
  if (status.phase === 'succeeded') return { status: stopRequested ? 'stopped' : 'finished' };
  // An eviction (kubectl drain), preemption or node-pressure eviction names itself; say so rather than how the worker died of it.
  const evicted = stopRequested ? undefined : disruptionOf(pod);
  if (evicted !== undefined && (deleting || status.phase === 'failed')) return { status: 'failed', reason: evicted, exitCode: status.exitCode };
  if (status.phase === 'failed') {
    if (stopRequested) return { status: 'stopped', reason: 'stopped on request', exitCode: status.exitCode };
    // Killed by someone's deletion: that is the news, not the signal's exit code (which is kept). The run's end
    // may be decided after the worker died of it, since the end waits for the run's log.
    if (endedByDeletion(pod)) return { status: 'failed', reason: DELETED_REASON, exitCode: status.exitCode };
    return { status: 'failed', reason: status.reason, exitCode: status.exitCode };
  }
  if (stopRequested && deleting) return { status: 'stopped', reason: 'stopped on request' };
  if (deleting) {
    // Deleted by someone else before it ended (`kubectl delete pod`): the run cannot go on.
    return { status: 'failed', reason: DELETED_REASON };
  }
  if (status.phase === 'running') return { status: 'running' };
  const verdict = stuckVerdict(pod, now, stuckGraceMs);
  if (verdict.fail) return { status: 'failed', reason: verdict.reason, deletePod: true, withEvents: true };
  return { status: 'pod-created', recheckAfterMs: verdict.recheckAfterMs };
}

/** Whether the Pod's run is over, reported or not: a new run on its worker may start. */
export function runIsOver(pod: RunPodWithMeta, now: Date, stuckGraceMs: number): boolean {
  return TERMINAL.has(decideRun(pod, now, stuckGraceMs).status);
}
