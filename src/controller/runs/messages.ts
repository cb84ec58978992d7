/**
 * The backend's messages for a worker: a `schedule` becomes exactly one run
 * Pod, a `stop` stops that Pod gracefully.
 *
 * Crash safety: the run Pod's name is derived from the run id, so a message
 * delivered again (the broker redelivers whatever was not acknowledged before
 * a crash) finds the Pod instead of making a second one; the message is
 * acknowledged only once the Pod exists and the run is accepted.
 */
import { ANNOTATION_STOP_REQUESTED, LABEL_WORKERPOOL, WORKER_KIND } from '../../api/constants.js';
import { EventReason } from '../../api/conditions.js';
import type { WorkerObject } from '../../api/types.js';
import type { ScheduleMessage, StopMessage, ToWorkerMessage } from '../../protocol/index.js';
import { describeApiError, ignoreNotFound, isAlreadyExists, isInvalid } from '../../runtime/errors.js';
import { PODS, type Pod } from '../../runtime/k8s-client.js';
import type { ControllerContext } from '../context.js';
import { isEnded, podsOfWorker, runIdOf, runningRunPod } from './controller.js';
import { envFromNames } from './env-from.js';
import { isRunPodOf, notOwnedReason, podIsOurs } from './ownership.js';
import { buildRunPod, RunConfigError, runPodName } from './run-pod.js';

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
  const pool = ctx.caches.pools.get(namespace, worker.spec.poolName);
  if (pool === undefined) return;
  const poolId = worker.metadata.labels?.[LABEL_WORKERPOOL] ?? pool.status?.poolId ?? '';
  const fail = async (reason: string): Promise<void> => {
    log.warn('run cannot start', { reason });
    // Straight to `failed` (the backend ends a scheduled run with it): an `accepted` first would
    // make the worker busy for a moment, and an idle announced in between would read as a lost run.
    await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'failed', reason }, ctx.signal);
    await ctx.events.record(worker, 'Warning', EventReason.RunFailed, `run ${message.runId} failed: ${reason}`);
    ctx.observer?.onOutcome?.('failed', reason);
  };

  const existing = ctx.caches.pods.get(namespace, runPodName(message.runId));
  if (existing !== undefined && !isRunPodOf(existing, worker, message.runId)) {
    await fail(notOwnedReason('Pod', runPodName(message.runId), worker));
    return;
  }
  // A late duplicate of a run that is over: the backend has its end already.
  if (existing !== undefined && isEnded(ctx, existing)) return;
  if (existing === undefined) {
    const busyWith = runningRunPod(ctx, podsOfWorker(ctx, worker).filter((p) => runIdOf(p) !== message.runId), new Date());
    if (busyWith !== undefined) {
      // Not accepted, never failed: the backend sends it again and it starts once this one is over.
      log.warn('schedule not accepted: the worker is still running another run; the backend will send it again', { busyWith: runIdOf(busyWith) });
      return;
    }
    let pod;
    try {
      pod = buildRunPod({
        pool: { name: pool.metadata.name ?? '', namespace, uid: pool.metadata.uid ?? '', spec: pool.spec, poolId },
        worker: { name: worker.metadata.name ?? '', uid: worker.metadata.uid ?? '', workerId: worker.spec.workerId },
        schedule: message,
        envFromNames: await envFromNames(ctx.client, namespace, pool.spec),
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
      // Not in the cache (it selects our label only): whoever made it, it is not ours unless it says so.
      if (isAlreadyExists(err) && !(await podIsOurs(ctx, namespace, runPodName(message.runId), worker, message.runId))) {
        await fail(notOwnedReason('Pod', runPodName(message.runId), worker));
        return;
      }
      if (!isAlreadyExists(err)) {
        if (isInvalid(err)) {
          await fail(`the API server refused the run Pod: ${describeApiError(err)}`);
          return;
        }
        // Not acknowledged: the broker redelivers the schedule and we try again.
        throw err;
      }
    }
  }
  // Busy before accepted: the backend fails an accepted run whose worker then says "idle".
  if (existing === undefined) ctx.runs.started(workerKey, message.runId);
  await ctx.sessions.setState(workerKey, 'busy', message.runId);
  // Created now or by an earlier delivery: either way the backend may stop redelivering.
  await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'accepted' }, ctx.signal);
}

async function stop(ctx: ControllerContext, worker: WorkerObject, message: StopMessage): Promise<void> {
  const namespace = worker.metadata.namespace ?? 'default';
  const pod = ctx.caches.pods.get(namespace, runPodName(message.runId));
  if (pod === undefined || isEnded(ctx, pod)) return;
  if (!isRunPodOf(pod, worker, message.runId)) {
    ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).warn('stop ignored', { runId: message.runId, reason: notOwnedReason('Pod', pod.metadata?.name ?? '', worker) });
    return;
  }
  const grace = ctx.caches.pools.get(namespace, worker.spec.poolName)?.spec.pod?.terminationGracePeriodSeconds;
  const name = pod.metadata?.name ?? '';
  const patched = await ignoreNotFound(ctx.client.mergePatch(PODS, namespace, name, { metadata: { annotations: { [ANNOTATION_STOP_REQUESTED]: 'true' } } }));
  // Graceful: the kubelet sends SIGTERM and waits the pool's grace period; the finalizer keeps the Pod until `stopped` is reported.
  if (patched !== undefined) await ignoreNotFound(ctx.client.delete(PODS, namespace, name, grace === undefined ? {} : { gracePeriodSeconds: grace }));
  ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).info('run stop requested', { runId: message.runId });
}
