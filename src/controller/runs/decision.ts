/**
 * What the backend should be told of a run, from its Pod alone. Pure, so
 * every branch is tested without a cluster, and one definition serves both
 * the reports (`controller.ts`) and the question a new schedule asks: is the
 * worker's previous run over?
 */
import { ANNOTATION_STOP_REQUESTED } from '../../api/constants.js';
import type { RunStatus } from '../../protocol/index.js';
import { classifyRunPod, stuckVerdict, type RunPodView } from './pod-status.js';

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

/** A Pod deleted on purpose by Kubernetes carries a DisruptionTarget condition saying who and why. */
function disruption(pod: RunPodWithMeta): string | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === 'DisruptionTarget' && x.status === 'True');
  if (c === undefined) return undefined;
  const message = c.message === undefined || c.message.trim() === '' ? '' : `: ${c.message.trim()}`;
  return `${c.reason ?? 'DisruptionTarget'}${message}`;
}

export interface RunPodWithMeta extends RunPodView {
  readonly metadata?: RunPodView['metadata'] & { readonly deletionTimestamp?: string | Date; readonly annotations?: Readonly<Record<string, string>> };
}

export function decideRun(pod: RunPodWithMeta, now: Date, stuckGraceMs: number): RunDecision {
  const status = classifyRunPod(pod, now);
  const stopRequested = pod.metadata?.annotations?.[ANNOTATION_STOP_REQUESTED] === 'true';
  const deleting = pod.metadata?.deletionTimestamp !== undefined;
  if (status.phase === 'succeeded') return { status: stopRequested ? 'stopped' : 'finished' };
  if (status.phase === 'failed') {
    if (stopRequested) return { status: 'stopped', reason: 'stopped on request', exitCode: status.exitCode };
    return { status: 'failed', reason: status.reason, exitCode: status.exitCode };
  }
  if (stopRequested && deleting) return { status: 'stopped', reason: 'stopped on request' };
  if (deleting) {
    // Deleted before it ended: the run cannot go on. Kubernetes names its own evictions.
    const evicted = disruption(pod);
    return {
      status: 'failed',
      reason:
        evicted === undefined
          ? 'the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)'
          : `the run Pod was evicted before the run ended (${evicted})`,
    };
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
