/**
 * The runs of one worker: the Pod's fate is reported to the backend, ended
 * Pods are cleaned up by the pool's history rules, and run Pod changes bring
 * their Worker back. (`messages.ts` turns the backend's `schedule` and `stop`
 * into Pods; `decision.ts` says what a Pod means for its run.)
 *
 * Crash safety: the Pod is the run's state. What was last reported to the
 * backend is an annotation on it, written after the broker acknowledged the
 * report, and a finalizer keeps the Pod until its end is reported; so a
 * controller killed at any point reports each change exactly once more at
 * worst, never not at all, and never creates a second Pod.
 *
 * Ordering invariant: the worker announces `idle` only when a `schedule`
 * arriving next would be accepted, so the backend's fastest reaction to an
 * idle worker (the next queued run, within milliseconds) never meets a
 * worker that refuses it.
 * 1. A new run's Pod is created, and the run remembered as starting
 *    (RunTracker), before `busy` and `accepted` are sent; until the cache
 *    shows the Pod it is the worker's run.
 * 2. A run's end is sent (which turns the worker `idle`) only once its Pod's
 *    decision is final, and from then on `runIsOver` holds for that Pod
 *    whatever the cache shows: a schedule is accepted at every step of the
 *    end (sent, acknowledged, written, seen by the cache).
 * 3. The end is written to the Pod in one patch (annotation and finalizer
 *    together, guarded by a test of the finalizer, not the resourceVersion,
 *    so a stale cached copy does not make it fail) and remembered until the
 *    cache shows it, so it is neither reported nor written twice.
 * 4. A schedule finding the worker with a run that is not over (the backend
 *    and the controller disagree) is not accepted: the backend sends it
 *    again, and it starts once that run's end is reported. It is never
 *    failed for it.
 * 5. A run's end is sent only once its log is complete in the backend
 *    (`log-relay.ts`), or relaying it has taken LOG_DRAIN_MAX_MS: a run the
 *    backend calls over has its whole log. Meanwhile the worker stays busy
 *    in the backend's eyes, and (2) still holds: `runIsOver` reads the Pod,
 *    not the log, so a schedule that arrives anyway is accepted.
 */
import { ANNOTATION_RUN_REPORTED, FINALIZER_RUN_POD, LABEL_RUN_ID, LABEL_WORKER, WORKER_KIND, WORKERPOOL_KIND } from '../../api/constants.js';
import { EventReason } from '../../api/conditions.js';
import type { WorkerObject, WorkerPoolObject } from '../../api/types.js';
import type { RunStatus } from '../../protocol/index.js';
import { ignoreNotFound } from '../../runtime/errors.js';
import { hasFinalizer, releaseAndDelete, removeFinalizer } from '../../runtime/finalizers.js';
import { EVENTS, PODS, type Pod } from '../../runtime/k8s-client.js';
import { RetryLaterError } from '../../runtime/queue.js';
import type { ControllerContext } from '../context.js';
import { objectKey, workerKeyOf } from '../keys.js';
import { decideRun, runIsOver, TERMINAL, type RunDecision } from './decision.js';
import { planPodHistory, type HistoryPod } from './pod-history.js';
import { workerStarted } from './log-relay.js';
import { classifyRunPod, withRecentEvents, type EventView } from './pod-status.js';

export interface RunsOfWorker {
  /** The run in progress, if any. */
  readonly activeRunId?: string;
  /** Look again after this long (a stuck Pod's grace or a history TTL runs out). */
  readonly requeueAfter?: number;
}

/** Reports only move forward: a restarted controller never reports `running` after `finished`. */
const ORDER: Record<RunStatus, number> = { accepted: 0, 'pod-created': 1, running: 2, finished: 3, failed: 3, stopped: 3 };

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

/** The end of a run as recorded on its Pod, or written by this process and not yet in the cache. */
function endReportedOf(ctx: ControllerContext, pod: Pod): RunStatus | undefined {
  return (pod.metadata?.annotations?.[ANNOTATION_RUN_REPORTED] as RunStatus | undefined) ?? ctx.runs.endOf(pod.metadata?.uid ?? '');
}

function reportedOf(ctx: ControllerContext, pod: Pod): RunStatus | undefined {
  return endReportedOf(ctx, pod) ?? ctx.runs.progressOf(pod.metadata?.uid ?? '');
}

/** The run's end is reported and written (or being written by this process). */
export function isEnded(ctx: ControllerContext, pod: Pod): boolean {
  const reported = endReportedOf(ctx, pod);
  return reported !== undefined && TERMINAL.has(reported);
}

/**
 * The pod of a worker whose run the backend does not know to be over. A Pod
 * that ended while no controller ran still counts until its end is reported:
 * announcing "idle" first would make the backend fail a run that succeeded.
 */
export function activeRunPod(ctx: ControllerContext, pods: readonly Pod[]): Pod | undefined {
  return pods.find((p) => !isEnded(ctx, p));
}

/**
 * The pod of a worker whose run is not over, reported or not: a run a new
 * schedule would have to wait for (see the ordering invariant).
 */
export function runningRunPod(ctx: ControllerContext, pods: readonly Pod[], now: Date): Pod | undefined {
  return pods.find((p) => !isEnded(ctx, p) && !runIsOver(p, now, ctx.options.stuckPodGraceMs));
}

export function podsOfWorker(ctx: ControllerContext, worker: WorkerObject): Pod[] {
  return ctx.caches.pods.byLabel(LABEL_WORKER, worker.spec.workerId, worker.metadata.namespace);
}

/** Relays the run's log to the backend from the moment its `worker` container starts until its end is reported. */
function relayLog(ctx: ControllerContext, pod: Pod): void {
  const workerKey = workerKeyOf(pod);
  if (workerKey === undefined || !workerStarted(pod) || isEnded(ctx, pod)) return;
  ctx.logs.ensure({ runId: runIdOf(pod), namespace: pod.metadata?.namespace ?? '', podName: pod.metadata?.name ?? '', podUid: pod.metadata?.uid ?? '', workerKey });
}

/** Run Pod changes bring their Worker's reconcile: ends and deletions at once, progress batched. */
export function watchRunPods(ctx: ControllerContext): void {
  const { caches, queues } = ctx;
  const onPod = (pod: Pod, deleted = false): void => {
    const key = workerKeyOf(pod);
    if (key === undefined) return;
    // At once, not with the batched reconcile: what the run prints first reaches the backend within moments.
    if (!deleted) relayLog(ctx, pod);
    const phase = classifyRunPod(pod, new Date()).phase;
    if (deleted || pod.metadata?.deletionTimestamp !== undefined || phase === 'succeeded' || phase === 'failed') queues.workers.add(key);
    else queues.workers.addAfter(key, RUN_PROGRESS_BATCH_MS);
  };
  caches.pods.addEventHandler({
    onAdd: (p) => onPod(p),
    onUpdate: (_o, p) => onPod(p),
    onDelete: (p) => {
      ctx.runs.forgetPod(p.metadata?.uid ?? '');
      ctx.logs.forget(p.metadata?.uid ?? '');
      onPod(p, true);
    },
  });
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

/** What the backend should know of this Pod now (`decision.ts`), a Pod that cannot start with its recent events. */
async function decide(ctx: ControllerContext, pod: Pod, now: Date): Promise<RunDecision> {
  const decision = decideRun(pod, now, ctx.options.stuckPodGraceMs);
  if (decision.withEvents !== true) return decision;
  return { ...decision, reason: withRecentEvents(decision.reason ?? '', await recentEvents(ctx, pod)) };
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
    const uid = pod.metadata?.uid ?? '';
    const recorded = pod.metadata?.annotations?.[ANNOTATION_RUN_REPORTED];
    // The cache shows the end this process wrote: nothing of the Pod needs remembering.
    if (recorded !== undefined && TERMINAL.has(recorded as RunStatus)) ctx.runs.forgetPod(uid);
    relayLog(ctx, pod);
    const decision = await decide(ctx, pod, now);
    soonest(decision.recheckAfterMs);
    const reported = reportedOf(ctx, pod);
    if (reported === undefined || ORDER[decision.status] > ORDER[reported]) {
      if (!connected) {
        // Reported once the session is back (its connect event brings this worker back).
        continue;
      }
      if (TERMINAL.has(decision.status)) {
        // The end waits for the log (invariant 5); the relay brings the worker back when it is done.
        const drained = ctx.logs.drained(uid);
        if (!drained.done) {
          soonest(drained.waitMs);
          continue;
        }
      }
      await report(ctx, key, worker, pod, decision);
      if (TERMINAL.has(decision.status)) ended.add(pod.metadata?.name ?? '');
    } else if (TERMINAL.has(reported)) {
      ended.add(pod.metadata?.name ?? '');
      // Recorded on the Pod by a controller that died before releasing it (the annotation and the
      // finalizer are written together now, but not by every earlier version).
      if (recorded !== undefined && hasFinalizer(pod, FINALIZER_RUN_POD)) await removeFinalizer(ctx.client, PODS, pod, FINALIZER_RUN_POD);
    }
  }

  // A Pod that vanished without its end being reported (finalizer removed by hand, then deleted
  // while no controller ran): the backend must still learn the run is over, or the worker would
  // look busy forever. Until the session is up to say so, the worker stays busy with that run:
  // announcing idle first makes the backend fail it as "lost". A run being started (its Pod
  // created but not yet in the cache) is not vanished.
  const lastRun = worker.status?.currentRunID;
  let vanished: string | undefined;
  // Nor is a run whose end this process reported while the Worker's status still names it.
  if (lastRun !== undefined && lastRun !== '' && ctx.runs.startingRun(key) !== lastRun && !ctx.runs.endedHere(key, lastRun) && !pods.some((p) => runIdOf(p) === lastRun)) {
    if (connected) await ctx.sessions.sendRunStatus(key, { runId: lastRun, status: 'failed', reason: 'the run Pod disappeared before its end was reported' }, ctx.signal);
    else vanished = lastRun;
  }

  soonest(await applyHistory(ctx, pool, pods, ended, now));
  const active = activeRunPod(ctx, pods.filter((p) => !ended.has(p.metadata?.name ?? '')));
  ctx.runs.seen(key, pods.map(runIdOf));
  const activeRunId = active === undefined ? (ctx.runs.startingRun(key) ?? vanished) : runIdOf(active);
  return { activeRunId, requeueAfter };
}

async function report(ctx: ControllerContext, key: string, worker: WorkerObject, pod: Pod, d: RunDecision): Promise<void> {
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
  // One write: the record of the end and the release of the finalizer (see the ordering invariant).
  await ignoreNotFound(removeFinalizer(ctx.client, PODS, pod, FINALIZER_RUN_POD, { key: ANNOTATION_RUN_REPORTED, value: d.status }));
  ctx.runs.endWritten(key, runId, uid, d.status);
  if (d.deletePod) await ignoreNotFound(ctx.client.delete(PODS, namespace, name, { gracePeriodSeconds: 0 }));
}

/** Deletes ended Pods the history rules do not keep; returns when the next TTL runs out. */
async function applyHistory(ctx: ControllerContext, pool: WorkerPoolObject, pods: Pod[], endedNow: Set<string>, now: Date): Promise<number | undefined> {
  const history: HistoryPod[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    if (pod.metadata?.deletionTimestamp !== undefined) continue;
    if (!endedNow.has(name) && !isEnded(ctx, pod)) {
      history.push({ name, result: pod.status?.phase === 'Running' ? 'running' : 'pending' });
      continue;
    }
    const status = classifyRunPod(pod, now);
    const reported = endReportedOf(ctx, pod);
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
    if (pod === undefined) continue;
    // An end this process just wrote released the finalizer already; the cached copy does not show it yet.
    if (ctx.runs.endOf(pod.metadata?.uid ?? '') !== undefined) await ignoreNotFound(ctx.client.delete(PODS, pod.metadata?.namespace, name));
    else await releaseAndDelete(ctx.client, PODS, pod, FINALIZER_RUN_POD);
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
