/**
 * The backend's messages for a worker: a `schedule` becomes exactly one run
 * Pod, a `stop` stops that Pod gracefully.
 *
 * Crash safety: the run Pod's name is derived from the run id, so a message
 * delivered again (the broker redelivers whatever was not acknowledged before
 * a crash) finds the Pod instead of making a second one; the message is
 * acknowledged only once the Pod (and, for a run with a script, its Secret)
 * exists and the run is accepted.
 */
import { createHash } from 'node:crypto';
import { ANNOTATION_STOP_REQUESTED, LABEL_WORKERPOOL, WORKER_KIND } from '../../api/constants.js';
import { EventReason } from '../../api/conditions.js';
import type { WorkerObject, WorkerPoolObject } from '../../api/types.js';
import type { ScheduleMessage, StopMessage, ToWorkerMessage } from '../../protocol/index.js';
import { TerminalBackendError, type ScriptRef } from '../../protocol/index.js';
import { describeApiError, ignoreNotFound, isAlreadyExists, isInvalid } from '../../runtime/errors.js';
import { PODS, SECRETS, type Pod } from '../../runtime/k8s-client.js';
import type { ControllerContext } from '../context.js';
import { isEnded, podsOfWorker, runIdOf, runningRunPod } from './controller.js';
import { envFromNames } from './env-from.js';
import { isRunPodOf, notOwnedReason, podIsOurs } from './ownership.js';
import { poolBackend } from './pool-backend.js';
import { buildRunPod, RunConfigError, runPodName, runSecretName } from './run-pod.js';
import { buildRunSecret } from './run-secret.js';

/** The run's script, from the backend, checked against the schedule's reference; or why the run cannot have it. */
async function fetchScript(ctx: ControllerContext, pool: WorkerPoolObject, runId: string, ref: ScriptRef): Promise<Buffer | { readonly refused: string }> {
  const backend = await poolBackend(ctx, pool);
  let script: Buffer;
  try {
    script = await backend.runScript(runId, { signal: ctx.signal });
  } catch (err) {
    // Unreachable: thrown, so the schedule is delivered again. Refused: the run cannot start.
    if (err instanceof TerminalBackendError) return { refused: `the backend did not give the run's script: ${err.message}` };
    throw err;
  }
  const sha256 = createHash('sha256').update(script).digest('hex');
  if (script.length !== ref.bytes || sha256 !== ref.sha256) {
    return { refused: `the script the backend gave (${script.length} bytes, sha256 ${sha256}) is not the one the schedule names (${ref.bytes} bytes, sha256 ${ref.sha256})` };
  }
  return script;
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
    // Before the Pod: a run whose script cannot be had gets no Pod.
    const script = message.script === undefined ? undefined : await fetchScript(ctx, pool, message.runId, message.script);
    if (script !== undefined && 'refused' in script) {
      await fail(script.refused);
      return;
    }
    let created: Pod | undefined;
    try {
      created = await ctx.client.create(PODS, namespace, pod as Pod);
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
    if (script !== undefined) {
      const made = created ?? (await ctx.client.get(PODS, namespace, runPodName(message.runId)));
      await ensureRunSecret(ctx, worker, poolId, made, message.runId, script);
    }
  } else if (message.script !== undefined && !(await runSecretExists(ctx, namespace, message.runId))) {
    // Delivered again after a controller died between the Pod and its Secret: the Pod waits for it.
    const script = await fetchScript(ctx, pool, message.runId, message.script);
    if ('refused' in script) {
      await fail(script.refused);
      return;
    }
    await ensureRunSecret(ctx, worker, poolId, existing, message.runId, script);
  }
  // Busy before accepted: the backend fails an accepted run whose worker then says "idle".
  if (existing === undefined) ctx.runs.started(workerKey, message.runId);
  await ctx.sessions.setState(workerKey, 'busy', message.runId);
  // Created now or by an earlier delivery: either way the backend may stop redelivering.
  await ctx.sessions.sendRunStatus(workerKey, { runId: message.runId, status: 'accepted' }, ctx.signal);
}

async function runSecretExists(ctx: ControllerContext, namespace: string, runId: string): Promise<boolean> {
  return (await ignoreNotFound(ctx.client.get(SECRETS, namespace, runSecretName(runId)))) !== undefined;
}

/**
 * The run's Secret, owned by the Worker and the Pod. One that exists already
 * is left as it is: ours from an earlier delivery, or someone else's, whose
 * script `init` refuses (it checks the schedule's SHA-256), failing the run.
 */
async function ensureRunSecret(ctx: ControllerContext, worker: WorkerObject, poolId: string, pod: Pod, runId: string, script: Buffer): Promise<void> {
  const namespace = worker.metadata.namespace ?? 'default';
  const secret = buildRunSecret({
    namespace,
    runId,
    poolId,
    worker: { name: worker.metadata.name ?? '', uid: worker.metadata.uid ?? '', workerId: worker.spec.workerId },
    pod: { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
    script,
  });
  try {
    await ctx.client.create(SECRETS, namespace, secret);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
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
