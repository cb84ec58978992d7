/**
 * WorkerPool reconcile: keep `poolSize` Workers, report the pool's status.
 * The Workers do the registering; the pool only decides how many there are
 * and which ones leave.
 */
import {
  ANNOTATION_DRAINING,
  API_GROUP_VERSION,
  FINALIZER_WORKER,
  FINALIZER_WORKERPOOL,
  LABEL_MANAGED_BY,
  LABEL_WORKERPOOL,
  MANAGED_BY_VALUE,
  WORKER_KIND,
  WORKERPOOL_KIND,
} from '../../api/constants.js';
import { RetryableBackendError } from '../../protocol/index.js';
import { type WorkerObject, type WorkerPoolObject } from '../../api/types.js';
import { WORKER_REF, WORKERPOOL_REF, workersOfPool, type ControllerContext } from '../context.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { setCondition } from '../../runtime/conditions.js';
import { checkPodTemplate, CONDITION_POD_TEMPLATE_VALID, REASON_POD_TEMPLATE_INVALID, templateCheckDue, type TemplateVerdict } from './template-check.js';
import { computePoolStatus, isBusy, statusChanged, type CredentialsState } from './status.js';
import { describeApiError, isAlreadyExists, isNotFound } from '../../runtime/errors.js';
import type { Result } from '../../runtime/queue.js';
import { activeRunPod, podsOfWorker } from '../runs/controller.js';
import { planScale, type WorkerSummary } from './scale-plan.js';
import { newWorkerId, workerName } from '../worker/id.js';

export const REASON_CANNOT_REGISTER = 'WorkerPoolCannotRegister';

/** Creates at most this many Workers at once, so a scale to 1000 does not open 1000 requests. */
const CREATE_PARALLELISM = 32;

export async function reconcilePool(ctx: ControllerContext, key: string): Promise<Result | void> {
  const raw = ctx.caches.pools.getByKey(key);
  if (raw === undefined) {
    ctx.backends.forget(key);
    ctx.expectations.forget(key);
    return;
  }
  const pool = raw;
  const namespace = pool.metadata.namespace ?? 'default';
  const workers = workersOfPool(ctx, namespace, pool.metadata.name ?? '');

  if (pool.metadata.deletionTimestamp !== undefined) return finalizePool(ctx, key, pool, workers);
  await addFinalizer(ctx.client, WORKERPOOL_REF, raw, FINALIZER_WORKERPOOL);

  const credentials = await ctx.backends.credentials(pool);
  if (!credentials.ok) {
    return cannotRegister(ctx, pool, workers, { valid: false, reason: credentials.reason, message: credentials.message });
  }
  const poolId = credentials.credentials.token.poolId;
  let verified;
  try {
    verified = await ctx.backends.verify(key, credentials.credentials);
  } catch (err) {
    if (err instanceof RetryableBackendError) {
      await writeStatus(ctx, pool, { valid: false, reason: 'BackendUnreachable', message: err.message, poolId }, workers);
    }
    throw err;
  }
  if (!verified.ok) {
    return cannotRegister(ctx, pool, workers, { valid: false, reason: 'BackendRefused', message: verified.message, poolId });
  }

  let template: TemplateVerdict | undefined;
  if (templateCheckDue(pool)) {
    template = await checkPodTemplate(ctx, pool, poolId);
    if (!template.valid) await ctx.events.record(pool, 'Warning', REASON_POD_TEMPLATE_INVALID, template.message);
  }
  // Workers register either way: a bad template fails runs with its reason, it does not stop the pool.
  await scale(ctx, key, pool, poolId, workers);
  await writeStatus(ctx, pool, { valid: true, poolId }, workers, template);
}

async function cannotRegister(ctx: ControllerContext, pool: WorkerPoolObject, workers: WorkerObject[], state: CredentialsState & { valid: false }): Promise<void> {
  ctx.log.with({ namespace: pool.metadata.namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND }).warn('pool cannot register workers', { reason: state.reason, cause: state.message });
  await ctx.events.record(pool, 'Warning', REASON_CANNOT_REGISTER, state.message);
  // Fixing the Secret triggers the next reconcile through the Secret watch: no retry loop here.
  await writeStatus(ctx, pool, state, workers);
}

function summarize(ctx: ControllerContext, w: WorkerObject): WorkerSummary {
  const busyCondition = w.status?.conditions?.find((c) => c.type === 'Busy');
  return {
    name: w.metadata.name ?? '',
    draining: w.metadata.annotations?.[ANNOTATION_DRAINING] === 'true',
    deleting: w.metadata.deletionTimestamp !== undefined,
    registered: w.status?.registered === true,
    busy: isBusy(w) || hasActiveRun(ctx, w),
    idleSince: busyCondition?.status === 'False' ? busyCondition.lastTransitionTime : (w.metadata.creationTimestamp ?? ''),
  };
}

/** A run of this worker is not over. The cache may know of it before the Worker's status does. */
function hasActiveRun(ctx: ControllerContext, w: WorkerObject): boolean {
  return activeRunPod(podsOfWorker(ctx, w)) !== undefined;
}

async function scale(ctx: ControllerContext, key: string, pool: WorkerPoolObject, poolId: string, workers: WorkerObject[]): Promise<void> {
  const namespace = pool.metadata.namespace ?? 'default';
  const summaries = new Map(workers.map((w) => [w.metadata.name ?? '', summarize(ctx, w)]));
  for (const [name, what] of ctx.expectations.of(key)) {
    const seen = summaries.get(name);
    if (what === 'create' && seen === undefined) {
      summaries.set(name, { name, draining: false, deleting: false, registered: false, busy: false, idleSince: '' });
    } else if (seen !== undefined) {
      summaries.set(name, { ...seen, draining: what === 'drain' });
    }
  }
  const plan = planScale(pool.spec.poolSize ?? 1, [...summaries.values()]);
  const log = ctx.log.with({ namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND });
  if (plan.create > 0 || plan.drain.length > 0 || plan.undrain.length > 0) {
    log.info('scaling pool', { create: plan.create, drain: plan.drain.length, undrain: plan.undrain.length });
  }

  for (const name of plan.drain) await setDraining(ctx, key, namespace, name, true);
  for (const name of plan.undrain) await setDraining(ctx, key, namespace, name, false);

  const toCreate = Array.from({ length: plan.create }, () => newWorkerId());
  for (let i = 0; i < toCreate.length; i += CREATE_PARALLELISM) {
    await Promise.all(toCreate.slice(i, i + CREATE_PARALLELISM).map((id) => createWorker(ctx, key, pool, poolId, id)));
  }
}

async function setDraining(ctx: ControllerContext, poolKey: string, namespace: string, name: string, draining: boolean): Promise<void> {
  ctx.expectations.expect(poolKey, name, draining ? 'drain' : 'undrain');
  try {
    await ctx.client.mergePatch(WORKER_REF, namespace, name, { metadata: { annotations: { [ANNOTATION_DRAINING]: draining ? 'true' : null } } });
  } catch (err) {
    ctx.expectations.forget(poolKey, name);
    if (!isNotFound(err)) throw err;
  }
}

async function createWorker(ctx: ControllerContext, poolKey: string, pool: WorkerPoolObject, poolId: string, workerId: string): Promise<void> {
  const poolName = pool.metadata.name ?? '';
  const name = workerName(poolName, workerId);
  const worker: WorkerObject = {
    apiVersion: API_GROUP_VERSION,
    kind: WORKER_KIND,
    metadata: {
      name,
      namespace: pool.metadata.namespace,
      labels: { [LABEL_WORKERPOOL]: poolId, [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
      finalizers: [FINALIZER_WORKER],
      ownerReferences: [
        { apiVersion: API_GROUP_VERSION, kind: WORKERPOOL_KIND, name: poolName, uid: pool.metadata.uid ?? '', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: { poolName, workerId },
  };
  ctx.expectations.expect(poolKey, name, 'create');
  try {
    await ctx.client.create(WORKER_REF, pool.metadata.namespace, worker);
  } catch (err) {
    if (isAlreadyExists(err)) return;
    ctx.expectations.forget(poolKey, name);
    throw new Error(`cannot create worker ${name}: ${describeApiError(err)}`, { cause: err });
  }
}

async function finalizePool(ctx: ControllerContext, key: string, pool: WorkerPoolObject, workers: WorkerObject[]): Promise<Result | void> {
  const raw = ctx.caches.pools.getByKey(key);
  if (raw === undefined || !hasFinalizer(raw, FINALIZER_WORKERPOOL)) return;
  const namespace = pool.metadata.namespace ?? 'default';
  for (const w of workers) {
    if (w.metadata.deletionTimestamp !== undefined) continue;
    try {
      await ctx.client.delete(WORKER_REF, namespace, w.metadata.name ?? '');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (workers.length > 0) {
    // Each Worker's deletion enqueues the pool again; the condition tells the user what holds it.
    const stuck = workers.map((w) => w.status?.conditions?.find((c) => c.type === 'Registered' && c.reason !== 'Registered')).find((c) => c !== undefined);
    const message = `waiting for ${workers.length} worker(s) to deregister from the backend${stuck === undefined ? '' : `: ${stuck.message}`}`;
    const status = computePoolStatus(pool, { valid: true, poolId: pool.status?.poolId ?? '' }, workers);
    const conditions = (status.conditions ?? []).map((c) => (c.type === 'Ready' ? { ...c, status: 'False' as const, reason: 'Deleting', message } : c));
    await patchStatus(ctx, pool, { ...status, conditions });
    return;
  }
  await removeFinalizer(ctx.client, WORKERPOOL_REF, raw, FINALIZER_WORKERPOOL);
  ctx.backends.forget(key);
  ctx.expectations.forget(key);
}

async function writeStatus(ctx: ControllerContext, pool: WorkerPoolObject, credentials: CredentialsState, workers: WorkerObject[], template?: TemplateVerdict): Promise<void> {
  const status = computePoolStatus(pool, credentials, workers);
  if (template === undefined) {
    await patchStatus(ctx, pool, status);
    return;
  }
  const conditions = setCondition(
    status.conditions,
    { type: CONDITION_POD_TEMPLATE_VALID, status: template.valid ? 'True' : 'False', reason: template.valid ? 'DryRunPassed' : 'DryRunFailed', message: template.message },
    pool.metadata.generation,
  );
  await patchStatus(ctx, pool, { ...status, conditions });
}

async function patchStatus(ctx: ControllerContext, pool: WorkerPoolObject, status: ReturnType<typeof computePoolStatus>): Promise<void> {
  if (!statusChanged(pool.status, status)) return;
  try {
    // A merge patch of the whole status: absent fields (actualPoolSize while credentials are broken) are removed with null.
    const body = { status: { ...status, actualPoolSize: status.actualPoolSize ?? null, selector: status.selector ?? null } };
    await ctx.client.mergePatch(WORKERPOOL_REF, pool.metadata.namespace, pool.metadata.name ?? '', body, { subresource: 'status' });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
