/**
 * The runs of one worker: a `schedule` message becomes exactly one run Pod,
 * the Pod's fate is reported to the backend, ended Pods are cleaned up by the
 * pool's history rules, and a `stop` message stops the Pod gracefully.
 *
 * The Pod is the run's state. What was last reported to the backend is an
 * annotation on it, written after the broker acknowledged the report, and a
 * finalizer keeps the Pod until its end is reported; so a controller killed
 * at any point reports each change exactly once more at worst, never not at
 * all, and never creates a second Pod.
 */
import {
  ANNOTATION_RUN_REPORTED,
  ANNOTATION_STOP_REQUESTED,
  FINALIZER_RUN_POD,
  LABEL_RUN_ID,
  LABEL_WORKER,
  WORKER_KIND,
  WORKERPOOL_KIND,
} from '../../api/constants.js';
import { type RunStatus, type ScheduleMessage, type StopMessage, type ToWorkerMessage } from '../../protocol/index.js';
import { type WorkerObject, type WorkerPoolObject } from '../../api/types.js';
import type { ControllerContext } from '../context.js';
import { hasFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { planPodHistory, type HistoryPod } from './pod-history.js';
import { classifyRunPod, disruptionOf, stuckVerdict, withRecentEvents, type EventView } from './pod-status.js';
import { buildRunPod, RunConfigError, runPodName } from './run-pod.js';
import { describeApiError, isAlreadyExists, isNotFound } from '../../runtime/errors.js';
import { EVENTS, PODS, type Pod } from '../../runtime/k8s-client.js';
import { RetryLaterError } from '../../runtime/queue.js';

export const REASON_RUN_FAILED = 'RunFailed';
export const REASON_RUN_POD_CREATED = 'RunPodCreated';

export interface RunsOfWorker {
  /** The run in progress, if any. */
  readonly activeRunId?: string;
  /** Look again after this long (a stuck Pod's grace or a history TTL runs out). */
  readonly requeueAfter?: number;
}

/** Observers the metrics hook into; all optional. */
export interface RunObserver {
  onPodCreated?(runId: string, scheduledAtMs: number): void;
  onRunning?(runId: string, podCreatedAt: string | undefined): void;
  onOutcome?(status: RunStatus, reason: string | undefined): void;
}

/** Reports only move forward: a restarted controller never reports `running` after `finished`. */
const ORDER: Record<RunStatus, number> = { accepted: 0, 'pod-created': 1, running: 2, finished: 3, failed: 3, stopped: 3 };
const TERMINAL: ReadonlySet<RunStatus> = new Set(['finished', 'failed', 'stopped']);

function runIdOf(pod: Pod): string {
  return pod.metadata?.labels?.[LABEL_RUN_ID] ?? '';
}

/** The end of a run, recorded on its Pod; see `ControllerContext.progressReports` for the rest. */
function endReportedOf(pod: Pod): RunStatus | undefined {
  return pod.metadata?.annotations?.[ANNOTATION_RUN_REPORTED] as RunStatus | undefined;
}

function reportedOf(ctx: ControllerContext, pod: Pod): RunStatus | undefined {
  return endReportedOf(pod) ?? ctx.progressReports.get(pod.metadata?.uid ?? '');
}

function isEnded(pod: Pod): boolean {
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
  // An eviction (kubectl drain), preemption or node-pressure eviction names itself; say so rather than how the worker died of it.
  const disruption = stopRequested ? undefined : disruptionOf(pod);
  if (disruption !== undefined && (deleting || status.phase === 'failed')) return { decision: { status: 'failed', reason: disruption, exitCode: status.exitCode } };
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
  const key = `${worker.metadata.namespace}/${worker.metadata.name}`;
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
  if (lastRun !== undefined && lastRun !== '' && ctx.pendingRuns.get(key) !== lastRun && !pods.some((p) => runIdOf(p) === lastRun)) {
    if (connected) await ctx.sessions.sendRunStatus(key, { runId: lastRun, status: 'failed', reason: 'the run Pod disappeared before its end was reported' });
    else vanished = lastRun;
  }

  soonest(await applyHistory(ctx, pool, pods, ended, now));
  const active = activeRunPod(pods.filter((p) => !ended.has(p.metadata?.name ?? '')));
  const pending = ctx.pendingRuns.get(key);
  if (pending !== undefined && pods.some((p) => runIdOf(p) === pending)) ctx.pendingRuns.delete(key);
  const activeRunId = active === undefined ? (ctx.pendingRuns.get(key) ?? vanished) : runIdOf(active);
  return { activeRunId, requeueAfter };
}

async function report(ctx: ControllerContext, key: string, worker: WorkerObject, pod: Pod, d: Decision): Promise<void> {
  const runId = runIdOf(pod);
  const namespace = pod.metadata?.namespace;
  const name = pod.metadata?.name ?? '';
  const sent = await ctx.sessions.sendRunStatus(key, { runId, status: d.status, reason: d.reason, exitCode: d.exitCode });
  if (!sent) throw new RetryLaterError(`worker ${key} has no session to report run ${runId} through`, 2_000);
  ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).info('run status reported', { runId, status: d.status, reason: d.reason, exitCode: d.exitCode });
  if (d.status === 'failed') await ctx.events.record(worker, 'Warning', REASON_RUN_FAILED, `run ${runId} failed: ${d.reason ?? 'no reason given'}`);
  if (d.status === 'running') ctx.observer?.onRunning?.(runId, pod.metadata?.creationTimestamp);
  if (TERMINAL.has(d.status)) ctx.observer?.onOutcome?.(d.status, d.reason);

  if (!TERMINAL.has(d.status)) {
    ctx.progressReports.set(pod.metadata?.uid ?? '', d.status);
    return;
  }
  ctx.progressReports.delete(pod.metadata?.uid ?? '');
  // One write: the record of the end and the release of the finalizer.
  // Guarded by the resourceVersion; a conflict retries and at worst reports the same status twice.
  const metadata = {
    annotations: { [ANNOTATION_RUN_REPORTED]: d.status },
    finalizers: (pod.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER_RUN_POD),
    resourceVersion: pod.metadata?.resourceVersion,
  };
  try {
    await ctx.client.mergePatch(PODS, namespace, name, { metadata });
    if (d.deletePod) await ctx.client.delete(PODS, namespace, name, { gracePeriodSeconds: 0 });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
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
    if (pod === undefined) continue;
    try {
      await removeFinalizer(ctx.client, PODS, pod, FINALIZER_RUN_POD);
      await ctx.client.delete(PODS, pod.metadata?.namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return plan.requeueAfterMs;
}

/** A message from the backend for one worker. Resolves once handled; the broker redelivers it otherwise. */
export async function handleWorkerMessage(ctx: ControllerContext, workerKey: string, message: ToWorkerMessage): Promise<void> {
  const worker = ctx.caches.workers.getByKey(workerKey);
  if (worker === undefined || worker.metadata.deletionTimestamp !== undefined) {
    ctx.log.warn('message for a worker that is gone; the backend learns of it on deregistration', { worker: workerKey, type: message.type });
    return;
  }
  // No reconcile is queued here: the Pod's own watch events bring the worker back.
  if (message.type === 'schedule') await schedule(ctx, workerKey, worker, message);
  else await stop(ctx, worker, message);
}

async function schedule(ctx: ControllerContext, workerKey: string, worker: WorkerObject, message: ScheduleMessage): Promise<void> {
  const receivedAt = Date.now();
  const namespace = worker.metadata.namespace ?? 'default';
  const log = ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND, runId: message.runId });
  const raw = ctx.caches.pools.get(namespace, worker.spec.poolName);
  if (raw === undefined) return;
  const pool = raw;
  const poolId = worker.metadata.labels?.['workers.spacelift.io/workerpool'] ?? pool.status?.poolId ?? '';
  const fail = async (reason: string): Promise<void> => {
    log.warn('run cannot start', { reason });
    await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'accepted' });
    await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'failed', reason });
    await ctx.events.record(worker, 'Warning', REASON_RUN_FAILED, `run ${message.runId} failed: ${reason}`);
    ctx.observer?.onOutcome?.('failed', reason);
  };

  const existing = ctx.caches.pods.get(namespace, runPodName(message.runId));
  // A late duplicate of a run that is over: the backend has its end already.
  if (existing !== undefined && isEnded(existing)) return;
  if (existing === undefined) {
    const busyWith = activeRunPod(podsOfWorker(ctx, worker));
    if (busyWith !== undefined && runIdOf(busyWith) !== message.runId) {
      await fail(`worker ${worker.spec.workerId} is busy with run ${runIdOf(busyWith)}`);
      return;
    }
    let pod;
    try {
      pod = buildRunPod({
        pool: { name: pool.metadata.name ?? '', namespace, uid: pool.metadata.uid ?? '', spec: pool.spec, poolId },
        worker: { name: worker.metadata.name ?? '', uid: worker.metadata.uid ?? '', workerId: worker.spec.workerId },
        schedule: message,
      });
    } catch (err) {
      if (err instanceof RunConfigError) {
        await fail(err.message);
        return;
      }
      throw err;
    }
    try {
      await ctx.client.create(PODS, namespace, pod as Pod);
      log.info('run pod created', { pod: pod.metadata?.name });
      ctx.observer?.onPodCreated?.(message.runId, receivedAt);
    } catch (err) {
      if (!isAlreadyExists(err)) {
        if (typeof err === 'object' && err !== null && (err as { code?: number }).code === 422) {
          await fail(`the API server refused the run Pod: ${describeApiError(err)}`);
          return;
        }
        // Not acknowledged: the broker redelivers the schedule and we try again.
        throw err;
      }
    }
  }
  // Busy before accepted: the backend fails an accepted run whose worker then says "idle".
  if (existing === undefined) ctx.pendingRuns.set(workerKey, message.runId);
  await ctx.sessions.setState(workerKey, 'busy', message.runId);
  // Created now or by an earlier delivery: either way the backend may stop redelivering.
  await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'accepted' });
}

async function stop(ctx: ControllerContext, worker: WorkerObject, message: StopMessage): Promise<void> {
  const namespace = worker.metadata.namespace ?? 'default';
  const pod = ctx.caches.pods.get(namespace, runPodName(message.runId));
  if (pod === undefined || isEnded(pod)) return;
  const raw = ctx.caches.pools.get(namespace, worker.spec.poolName);
  const grace = raw === undefined ? undefined : raw.spec.pod?.terminationGracePeriodSeconds;
  try {
    await ctx.client.mergePatch(PODS, namespace, pod.metadata?.name ?? '', { metadata: { annotations: { [ANNOTATION_STOP_REQUESTED]: 'true' } } });
    // Graceful: the kubelet sends SIGTERM and waits the pool's grace period; the finalizer keeps the Pod until `stopped` is reported.
    await ctx.client.delete(PODS, namespace, pod.metadata?.name ?? '', grace === undefined ? {} : { gracePeriodSeconds: grace });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).info('run stop requested', { runId: message.runId });
}

/** Run Pods whose Worker is gone: nothing will report them, so they go (the garbage collector may not run). */
export async function cleanUpOrphans(ctx: ControllerContext, namespace: string, workerName: string): Promise<void> {
  const orphans = ctx.caches.pods.list((p) => p.metadata?.namespace === namespace && p.metadata.ownerReferences?.some((o) => o.kind === WORKER_KIND && o.name === workerName) === true);
  for (const pod of orphans) {
    ctx.progressReports.delete(pod.metadata?.uid ?? '');
    try {
      await removeFinalizer(ctx.client, PODS, pod, FINALIZER_RUN_POD);
      await ctx.client.delete(PODS, namespace, pod.metadata?.name ?? '');
      ctx.log.info('removed a run pod whose worker is gone', { namespace, pod: pod.metadata?.name, worker: workerName });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
