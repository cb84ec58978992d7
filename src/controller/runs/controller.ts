/**
 * The runs of one worker: the Pod's fate is reported to the backend, ended
 * Pods are cleaned up by the pool's history rules, and run Pod changes bring
 * their Worker back. (`messages.ts` turns the backend's `schedule` and `stop`
 * into Pods.)
 *
 * Crash safety: the Pod is the run's state. What was last reported to the
 * backend is an annotation on it, written after the broker acknowledged the
 * report, and a finalizer keeps the Pod until its end is reported; so a
 * controller killed at any point reports each change exactly once more at
 * worst, never not at all, and never creates a second Pod.
 */
import { ANNOTATION_RUN_REPORTED, ANNOTATION_STOP_REQUESTED, FINALIZER_RUN_POD, LABEL_RUN_ID, LABEL_WORKER, WORKER_KIND, WORKERPOOL_KIND } from '../../api/constants.js';
import { EventReason } from '../../api/conditions.js';
import type { WorkerObject, WorkerPoolObject } from '../../api/types.js';
import type { RunStatus } from '../../protocol/index.js';
import { ignoreNotFound } from '../../runtime/errors.js';
import { hasFinalizer, releaseAndDelete, removeFinalizer } from '../../runtime/finalizers.js';
import { EVENTS, PODS, type Pod } from '../../runtime/k8s-client.js';
import { RetryLaterError } from '../../runtime/queue.js';
import type { ControllerContext } from '../context.js';
import { objectKey, workerKeyOf } from '../keys.js';
import { planPodHistory, type HistoryPod } from './pod-history.js';
import { classifyRunPod, stuckVerdict, withRecentEvents, type EventView } from './pod-status.js';

export interface RunsOfWorker {
  /** The run in progress, if any. */
  readonly activeRunId?: string;
  /** Look again after this long (a stuck Pod's grace or a history TTL runs out). */
  readonly requeueAfter?: number;
}

/** Reports only move forward: a restarted controller never reports `running` after `finished`. */
const ORDER: Record<RunStatus, number> = { accepted: 0, 'pod-created': 1, running: 2, finished: 3, failed: 3, stopped: 3 };
export const TERMINAL: ReadonlySet<RunStatus> = new Set(['finished', 'failed', 'stopped']);

/**
 * A run Pod's progress (created, bound, started) reaches its Worker's reconcile
 * up to this much later, so that in a burst of run starts the Pod creates are
 * not slowed by follow-up writes (Worker status) competing with them in the API
 * server, and a Pod's quick run of updates makes one reconcile. The schedule
 * path has already told the backend `busy` and `accepted` by then. Ends and
 * deletions are handled at once: they free the worker.
 */
const RUN_PROGRESS_BATCH_MS = 1000;

export function runIdOf(pod: Pod): string {
  return pod.metadata?.labels?.[LABEL_RUN_ID] ?? '';
}

/** The end of a run, recorded on its Pod; see `RunTracker` for the rest. */
function endReportedOf(pod: Pod): RunStatus | undefined {
  return pod.metadata?.annotations?.[ANNOTATION_RUN_REPORTED] as RunStatus | undefined;
}

function reportedOf(ctx: ControllerContext, pod: Pod): RunStatus | undefined {
  return endReportedOf(pod) ?? ctx.runs.progressOf(pod.metadata?.uid ?? '');
}

export function isEnded(pod: Pod): boolean {
  const reported = endReportedOf(pod);
  return reported !== undefined && TERMINAL.has(reported);
}

/**
 * The pod of a worker whose run the backend does not know to be over. A Pod
 * that ended while no controller ran still counts until its end is reported:
 * announcing "idle" first would make the backend fail a run that succeeded.
 */
export function activeRunPod(pods: readonly Pod[]): Pod | undefined {
  return pods.find((p) => !isEnded(p));
}

export function podsOfWorker(ctx: ControllerContext, worker: WorkerObject): Pod[] {
  return ctx.caches.pods.byLabel(LABEL_WORKER, worker.spec.workerId, worker.metadata.namespace);
}

/** Run Pod changes bring their Worker's reconcile: ends and deletions at once, progress batched. */
export function watchRunPods(ctx: ControllerContext): void {
  const { caches, queues } = ctx;
  const onPod = (pod: Pod, deleted = false): void => {
    const key = workerKeyOf(pod);
    if (key === undefined) return;
    const phase = classifyRunPod(pod, new Date()).phase;
    if (deleted || pod.metadata?.deletionTimestamp !== undefined || phase === 'succeeded' || phase === 'failed') queues.workers.add(key);
    else queues.workers.addAfter(key, RUN_PROGRESS_BATCH_MS);
  };
  caches.pods.addEventHandler({ onAdd: (p) => onPod(p), onUpdate: (_o, p) => onPod(p), onDelete: (p) => onPod(p, true) });
}

interface Decision {
  readonly status: RunStatus;
  readonly reason?: string;
  readonly exitCode?: number;
  /** Delete the Pod once this is reported (a stuck Pod frees its worker). */
  readonly deletePod?: boolean;
}

async function recentEvents(ctx: ControllerContext, pod: Pod): Promise<EventView[]> {
  try {
    const list = await ctx.client.list(EVENTS, pod.metadata?.namespace, {
      fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod.metadata?.name ?? ''}`,
    });
    return [...list.items].sort((a, b) => (a.lastTimestamp ?? a.eventTime ?? '').localeCompare(b.lastTimestamp ?? b.eventTime ?? ''));
  } catch {
    return [];
  }
}

/** What the backend should know of this Pod now, or undefined when nothing new. */
async function decide(ctx: ControllerContext, pod: Pod, now: Date): Promise<{ decision?: Decision; recheckAfterMs?: number }> {
  const status = classifyRunPod(pod, now);
  const stopRequested = pod.metadata?.annotations?.[ANNOTATION_STOP_REQUESTED] === 'true';
  const deleting = pod.metadata?.deletionTimestamp !== undefined;
  if (status.phase === 'succeeded') return { decision: { status: stopRequested ? 'stopped' : 'finished' } };
  if (status.phase === 'failed') {
    if (stopRequested) return { decision: { status: 'stopped', reason: 'stopped on request', exitCode: status.exitCode } };
    return { decision: { status: 'failed', reason: status.reason, exitCode: status.exitCode } };
  }
  if (stopRequested && deleting) return { decision: { status: 'stopped', reason: 'stopped on request' } };
  if (deleting) {
    // Deleted by someone else: evicted, drained node, `kubectl delete pod`. The run cannot go on.
    return { decision: { status: 'failed', reason: 'the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)' } };
  }
  if (status.phase === 'running') return { decision: { status: 'running' } };
  const verdict = stuckVerdict(pod, now, ctx.options.stuckPodGraceMs);
  if (verdict.fail) {
    const reason = withRecentEvents(verdict.reason, await recentEvents(ctx, pod));
    return { decision: { status: 'failed', reason, deletePod: true } };
  }
  return { decision: { status: 'pod-created' }, recheckAfterMs: verdict.recheckAfterMs };
}

/**
 * Brings the backend's view of this worker's runs up to date, applies the
 * history rules, and says which run is in progress. Called by every Worker
 * reconcile.
 */
export async function syncRuns(ctx: ControllerContext, worker: WorkerObject, pool: WorkerPoolObject): Promise<RunsOfWorker> {
  const key = objectKey(worker);
  const pods = podsOfWorker(ctx, worker);
  const now = new Date();
  let requeueAfter: number | undefined;
  const soonest = (ms: number | undefined): void => {
    if (ms !== undefined) requeueAfter = requeueAfter === undefined ? ms : Math.min(requeueAfter, ms);
  };
  const connected = ctx.sessions.isConnected(key);
  const ended = new Set<string>();

  for (const pod of pods) {
    const { decision, recheckAfterMs } = await decide(ctx, pod, now);
    soonest(recheckAfterMs);
    const reported = reportedOf(ctx, pod);
    if (decision !== undefined && (reported === undefined || ORDER[decision.status] > ORDER[reported])) {
      if (!connected) {
        // Reported once the session is back (its connect event brings this worker back).
        continue;
      }
      await report(ctx, key, worker, pod, decision);
      if (TERMINAL.has(decision.status)) ended.add(pod.metadata?.name ?? '');
    } else if (reported !== undefined && TERMINAL.has(reported)) {
      ended.add(pod.metadata?.name ?? '');
      // Reported by an earlier reconcile that died before releasing the Pod.
      if (hasFinalizer(pod, FINALIZER_RUN_POD)) await removeFinalizer(ctx.client, PODS, pod, FINALIZER_RUN_POD);
    }
  }

  // A Pod that vanished without its end being reported (finalizer removed by hand, then deleted
  // while no controller ran): the backend must still learn the run is over, or the worker would
  // look busy forever. Until the session is up to say so, the worker stays busy with that run:
  // announcing idle first makes the backend fail it as "lost". A run being started (its Pod
  // created but not yet in the cache) is not vanished.
  const lastRun = worker.status?.currentRunID;
  let vanished: string | undefined;
  if (lastRun !== undefined && lastRun !== '' && ctx.runs.startingRun(key) !== lastRun && !pods.some((p) => runIdOf(p) === lastRun)) {
    if (connected) await ctx.sessions.sendRunStatus(key, { runId: lastRun, status: 'failed', reason: 'the run Pod disappeared before its end was reported' }, ctx.signal);
    else vanished = lastRun;
  }

  soonest(await applyHistory(ctx, pool, pods, ended, now));
  const active = activeRunPod(pods.filter((p) => !ended.has(p.metadata?.name ?? '')));
  ctx.runs.seen(key, pods.map(runIdOf));
  const activeRunId = active === undefined ? (ctx.runs.startingRun(key) ?? vanished) : runIdOf(active);
  return { activeRunId, requeueAfter };
}

async function report(ctx: ControllerContext, key: string, worker: WorkerObject, pod: Pod, d: Decision): Promise<void> {
  const runId = runIdOf(pod);
  const namespace = pod.metadata?.namespace;
  const name = pod.metadata?.name ?? '';
  const uid = pod.metadata?.uid ?? '';
  const sent = await ctx.sessions.sendRunStatus(key, { runId, status: d.status, reason: d.reason, exitCode: d.exitCode }, ctx.signal);
  if (!sent) throw new RetryLaterError(`worker ${key} has no session to report run ${runId} through`, 2_000);
  ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).info('run status reported', { runId, status: d.status, reason: d.reason, exitCode: d.exitCode });
  if (d.status === 'failed') await ctx.events.record(worker, 'Warning', EventReason.RunFailed, `run ${runId} failed: ${d.reason ?? 'no reason given'}`);
  if (d.status === 'running') ctx.observer?.onRunning?.(runId, pod.metadata?.creationTimestamp);
  if (TERMINAL.has(d.status)) ctx.observer?.onOutcome?.(d.status, d.reason);

  if (!TERMINAL.has(d.status)) {
    ctx.runs.reported(uid, d.status);
    return;
  }
  ctx.runs.forgetPod(uid);
  // One write: the record of the end and the release of the finalizer.
  // Guarded by the resourceVersion; a conflict retries and at worst reports the same status twice.
  const metadata = {
    annotations: { [ANNOTATION_RUN_REPORTED]: d.status },
    finalizers: (pod.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER_RUN_POD),
    resourceVersion: pod.metadata?.resourceVersion,
  };
  await ignoreNotFound(ctx.client.mergePatch(PODS, namespace, name, { metadata }));
  if (d.deletePod) await ignoreNotFound(ctx.client.delete(PODS, namespace, name, { gracePeriodSeconds: 0 }));
}

/** Deletes ended Pods the history rules do not keep; returns when the next TTL runs out. */
async function applyHistory(ctx: ControllerContext, pool: WorkerPoolObject, pods: Pod[], endedNow: Set<string>, now: Date): Promise<number | undefined> {
  const history: HistoryPod[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    if (pod.metadata?.deletionTimestamp !== undefined) continue;
    if (!endedNow.has(name) && !isEnded(pod)) {
      history.push({ name, result: pod.status?.phase === 'Running' ? 'running' : 'pending' });
      continue;
    }
    const status = classifyRunPod(pod, now);
    const reported = endReportedOf(pod);
    const succeeded = status.phase === 'succeeded' || reported === 'finished';
    history.push({ name, result: succeeded ? 'succeeded' : 'failed', finishedAt: status.finishedAt ?? new Date(pod.metadata?.creationTimestamp ?? now) });
  }
  let plan;
  try {
    plan = planPodHistory(history, pool.spec, now);
  } catch (err) {
    // Invalid history settings keep everything: losing a Pod is worse than keeping one.
    ctx.log.with({ namespace: pool.metadata.namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND }).warn('history settings are invalid; keeping every run Pod', { err: String(err) });
    return undefined;
  }
  for (const name of plan.delete) {
    const pod = pods.find((p) => p.metadata?.name === name);
    if (pod !== undefined) await releaseAndDelete(ctx.client, PODS, pod, FINALIZER_RUN_POD);
  }
  return plan.requeueAfterMs;
}

/** Run Pods whose Worker is gone: nothing will report them, so they go (the garbage collector may not run). */
export async function cleanUpOrphans(ctx: ControllerContext, workerKey: string): Promise<void> {
  const orphans = ctx.caches.pods.list((p) => workerKeyOf(p) === workerKey);
  for (const pod of orphans) {
    ctx.runs.forgetPod(pod.metadata?.uid ?? '');
    await releaseAndDelete(ctx.client, PODS, pod, FINALIZER_RUN_POD);
    ctx.log.info('removed a run pod whose worker is gone', { namespace: pod.metadata?.namespace, pod: pod.metadata?.name, worker: workerKey });
  }
}
