/**
 * WorkerPool reconcile: keep `poolSize` Workers, report the pool's status.
 * The Workers do the registering; the pool only decides how many there are
 * and which ones leave.
 *
 * Crash safety: Worker names are chosen before they are created and
 * remembered as expectations until the cache shows them, so a reconcile
 * running before the informer catches up makes no second Worker; a restarted
 * controller lists every Worker afresh, and draining is an annotation on the
 * Worker, so a scale-down in progress survives a restart.
 */
import { ANNOTATION_DRAINING, FINALIZER_WORKERPOOL, WORKERPOOL_KIND } from '../../api/constants.js';
import { AutoscalingReason, CredentialsReason, EventReason, PodTemplateReason, PoolCondition, PoolReadyReason, RegisteredReason, WorkerCondition } from '../../api/conditions.js';
import { WORKER_REF, WORKERPOOL_REF, type WorkerObject, type WorkerPoolObject, type WorkerPoolStatus } from '../../api/types.js';
import { RetryableBackendError } from '../../protocol/index.js';
import { findCondition, setCondition } from '../../runtime/conditions.js';
import { describeApiError, ignoreNotFound, isAlreadyExists } from '../../runtime/errors.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from '../../runtime/finalizers.js';
import { POD_DISRUPTION_BUDGETS, type PodDisruptionBudget, type Secret } from '../../runtime/k8s-client.js';
import { ownerName } from '../../runtime/owners.js';
import type { ReconcileContext, Result } from '../../runtime/queue.js';
import { statusChanged } from '../../runtime/status.js';
import type { BackendApi } from '../backend/connector.js';
import { referencedSecrets } from '../backend/credentials.js';
import { forReconcile, INDEX_WORKERS_BY_POOL, workersOfPool, type ControllerContext } from '../context.js';
import { objectKey } from '../keys.js';
import { activeRunPod, podsOfWorker } from '../runs/controller.js';
import { newWorkerId } from '../worker/id.js';
import { disruptionBudgetName, newRunPodDisruptionBudget } from './new-disruption-budget.js';
import { newWorker } from './new-worker.js';
import { recommend, type Recommendation } from './autoscaler.js';
import { planScale, type WorkerSummary } from './scale-plan.js';
import { computePoolStatus, isBusy, type CredentialsState } from './status.js';
import { checkPodTemplate, templateCheckDue, type TemplateVerdict } from './template-check.js';

/** Creates at most this many Workers at once, so a scale to 1000 does not open 1000 requests. */
const CREATE_PARALLELISM = 32;

/**
 * WorkerPool changes bring the pool's reconcile (our own status writes
 * excepted); spec changes and changes of a referenced Secret bring every
 * Worker of the pool too (new credentials, a new pod template).
 */
export function watchPools(ctx: ControllerContext): void {
  const { caches, queues } = ctx;
  const everyWorkerOf = (poolKey: string): void => {
    for (const w of caches.workers.byIndex(INDEX_WORKERS_BY_POOL, poolKey)) queues.workers.add(objectKey(w));
  };
  caches.pools.addEventHandler({
    onAdd: (p) => queues.pools.add(objectKey(p)),
    onUpdate: (old, p) => {
      const m = old.metadata;
      const n = p.metadata;
      if (m.generation !== n.generation || m.deletionTimestamp !== n.deletionTimestamp || String(m.finalizers) !== String(n.finalizers)) {
        queues.pools.add(objectKey(p));
      }
      if (JSON.stringify(old.spec) !== JSON.stringify(p.spec)) everyWorkerOf(objectKey(p));
    },
    onDelete: (p) => queues.pools.add(objectKey(p)),
  });

  const onSecret = (secret: Secret): void => {
    const namespace = secret.metadata?.namespace;
    const name = secret.metadata?.name;
    for (const pool of caches.pools.list((p) => p.metadata.namespace === namespace)) {
      const refs = referencedSecrets(pool.spec);
      if (refs.token?.name === name || refs.privateKey?.name === name) {
        queues.pools.add(objectKey(pool));
        everyWorkerOf(objectKey(pool));
      }
    }
  };
  caches.secrets.addEventHandler({ onAdd: onSecret, onUpdate: (_o, s) => onSecret(s), onDelete: onSecret });

  // A budget changed or deleted by hand is put back as the pool says.
  const onBudget = (budget: PodDisruptionBudget): void => {
    const pool = ownerName(budget, WORKERPOOL_KIND);
    if (pool !== undefined) queues.pools.add(objectKey({ metadata: { namespace: budget.metadata?.namespace, name: pool } }));
  };
  caches.budgets.addEventHandler({ onUpdate: (_o, b) => onBudget(b), onDelete: onBudget });
}

export async function reconcilePool(base: ControllerContext, key: string, rc: ReconcileContext): Promise<Result | void> {
  const ctx = forReconcile(base, rc.signal);
  const pool = ctx.caches.pools.getByKey(key);
  if (pool === undefined) {
    ctx.backends.forget(key);
    ctx.expectations.forget(key);
    ctx.demand.stop(key);
    return;
  }
  const workers = workersOfPool(ctx, pool);

  if (pool.metadata.deletionTimestamp !== undefined) return finalizePool(ctx, key, pool, workers);
  await addFinalizer(ctx.client, WORKERPOOL_REF, pool, FINALIZER_WORKERPOOL);

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
      await writeStatus(ctx, pool, { valid: false, reason: CredentialsReason.BackendUnreachable, message: err.message, poolId }, workers);
    }
    throw err;
  }
  if (!verified.ok) {
    return cannotRegister(ctx, pool, workers, { valid: false, reason: CredentialsReason.BackendRefused, message: verified.message, poolId });
  }

  let template: TemplateVerdict | undefined;
  if (templateCheckDue(pool)) {
    template = await checkPodTemplate(ctx, pool, poolId);
    if (!template.valid) await ctx.events.record(pool, 'Warning', EventReason.PodTemplateInvalid, template.message);
  }
  const size = autoscale(ctx, key, pool, workers, ctx.backends.client(key, credentials.credentials));
  if (size.autoscale?.event !== undefined) await ctx.events.record(pool, 'Normal', EventReason.PoolAutoscaled, size.autoscale.event);
  // Workers register either way: a bad template fails runs with its reason, it does not stop the pool.
  await scale(ctx, key, pool, poolId, workers, size.desired);
  await syncDisruptionBudget(ctx, pool, newRunPodDisruptionBudget(pool, poolId));
  await writeStatus(ctx, pool, { valid: true, poolId, protocolVersion: credentials.credentials.token.protocolVersion }, workers, { template, desired: size.desired, autoscale: size.autoscale });
  const recheck = size.autoscale?.recheckAfterMs;
  return recheck === undefined ? undefined : { requeueAfter: recheck };
}

/**
 * The pool's size: spec.poolSize, or with spec.autoscaling the autoscaler's
 * recommendation from the backend's demand (watched while autoscaling is on).
 */
function autoscale(ctx: ControllerContext, key: string, pool: WorkerPoolObject, workers: WorkerObject[], backend: BackendApi): { desired: number; autoscale?: Recommendation } {
  const spec = pool.spec.autoscaling;
  if (spec === undefined) {
    ctx.demand.stop(key);
    return { desired: pool.spec.poolSize ?? 1 };
  }
  ctx.demand.ensure(key, backend);
  // A pool that just turned autoscaling on starts from the size it has.
  const present = workers.filter((w) => w.metadata.deletionTimestamp === undefined && w.metadata.annotations?.[ANNOTATION_DRAINING] !== 'true').length;
  const current = pool.status?.autoscaling?.recommendation ?? present;
  const recommendation = recommend(spec, pool.status?.autoscaling, current, ctx.demand.demandOf(key), new Date());
  if (recommendation.event !== undefined) {
    ctx.log.with({ namespace: pool.metadata.namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND }).info('pool autoscaled', { from: current, to: recommendation.size, reason: recommendation.reason });
    ctx.observer?.onAutoscaled?.(recommendation.size > current ? 'up' : 'down');
  }
  return { desired: recommendation.size, autoscale: recommendation };
}

async function cannotRegister(ctx: ControllerContext, pool: WorkerPoolObject, workers: WorkerObject[], state: CredentialsState & { valid: false }): Promise<void> {
  ctx.log.with({ namespace: pool.metadata.namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND }).warn('pool cannot register workers', { reason: state.reason, cause: state.message });
  await ctx.events.record(pool, 'Warning', EventReason.WorkerPoolCannotRegister, state.message);
  // Fixing the Secret triggers the next reconcile through the Secret watch: no retry loop here.
  await writeStatus(ctx, pool, state, workers);
}

function summarize(ctx: ControllerContext, w: WorkerObject): WorkerSummary {
  const busyCondition = findCondition(w.status?.conditions, WorkerCondition.Busy);
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
  return activeRunPod(ctx, podsOfWorker(ctx, w)) !== undefined;
}

async function scale(ctx: ControllerContext, key: string, pool: WorkerPoolObject, poolId: string, workers: WorkerObject[], desired: number): Promise<void> {
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
  const plan = planScale(desired, [...summaries.values()]);
  const log = ctx.log.with({ namespace, name: pool.metadata.name, kind: WORKERPOOL_KIND });
  if (plan.create > 0 || plan.drain.length > 0 || plan.undrain.length > 0) {
    log.info('scaling pool', { create: plan.create, drain: plan.drain.length, undrain: plan.undrain.length });
  }

  for (const name of plan.drain) await setDraining(ctx, key, namespace, name, true);
  for (const name of plan.undrain) await setDraining(ctx, key, namespace, name, false);

  const toCreate = Array.from({ length: plan.create }, () => newWorker(pool, poolId, newWorkerId()));
  for (let i = 0; i < toCreate.length; i += CREATE_PARALLELISM) {
    ctx.signal.throwIfAborted();
    await Promise.all(toCreate.slice(i, i + CREATE_PARALLELISM).map((worker) => createWorker(ctx, key, worker)));
  }
}

async function setDraining(ctx: ControllerContext, poolKey: string, namespace: string, name: string, draining: boolean): Promise<void> {
  ctx.expectations.expect(poolKey, name, draining ? 'drain' : 'undrain');
  let patched;
  try {
    patched = await ignoreNotFound(ctx.client.mergePatch(WORKER_REF, namespace, name, { metadata: { annotations: { [ANNOTATION_DRAINING]: draining ? 'true' : null } } }));
  } finally {
    if (patched === undefined) ctx.expectations.forget(poolKey, name);
  }
}

async function createWorker(ctx: ControllerContext, poolKey: string, worker: WorkerObject): Promise<void> {
  const name = worker.metadata.name ?? '';
  ctx.expectations.expect(poolKey, name, 'create');
  try {
    await ctx.client.create(WORKER_REF, worker.metadata.namespace, worker);
  } catch (err) {
    if (isAlreadyExists(err)) return;
    ctx.expectations.forget(poolKey, name);
    throw new Error(`cannot create worker ${name}: ${describeApiError(err)}`, { cause: err });
  }
}

/** Makes the pool's budget what the pool asks for: created, updated, or deleted when it asks for none. */
async function syncDisruptionBudget(ctx: ControllerContext, pool: WorkerPoolObject, wanted: PodDisruptionBudget | undefined): Promise<void> {
  const namespace = pool.metadata.namespace;
  const current = ctx.caches.budgets.get(namespace, disruptionBudgetName(pool));
  if (wanted === undefined) {
    if (current !== undefined && ownerName(current, WORKERPOOL_KIND) === pool.metadata.name) {
      await ignoreNotFound(ctx.client.delete(POD_DISRUPTION_BUDGETS, namespace, disruptionBudgetName(pool)));
    }
    return;
  }
  if (current === undefined) {
    try {
      await ctx.client.create(POD_DISRUPTION_BUDGETS, namespace, wanted);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    return;
  }
  if (JSON.stringify(current.spec?.selector) !== JSON.stringify(wanted.spec?.selector) || current.spec?.maxUnavailable !== wanted.spec?.maxUnavailable) {
    await ctx.client.mergePatch(POD_DISRUPTION_BUDGETS, namespace, disruptionBudgetName(pool), { spec: { selector: wanted.spec?.selector, maxUnavailable: wanted.spec?.maxUnavailable, minAvailable: null } });
  }
}

async function finalizePool(ctx: ControllerContext, key: string, pool: WorkerPoolObject, workers: WorkerObject[]): Promise<Result | void> {
  if (!hasFinalizer(pool, FINALIZER_WORKERPOOL)) return;
  for (const w of workers) {
    if (w.metadata.deletionTimestamp === undefined) await ignoreNotFound(ctx.client.delete(WORKER_REF, w.metadata.namespace, w.metadata.name ?? ''));
  }
  if (workers.length > 0) {
    // Each Worker's deletion enqueues the pool again; the condition tells the user what holds it.
    const stuck = workers.map((w) => findCondition(w.status?.conditions, WorkerCondition.Registered)).find((c) => c !== undefined && c.reason !== RegisteredReason.Registered);
    const message = `waiting for ${workers.length} worker(s) to deregister from the backend${stuck === undefined ? '' : `: ${stuck.message}`}`;
    const status = { ...computePoolStatus(pool, { valid: true, poolId: pool.status?.poolId ?? '' }, workers), autoscaling: pool.status?.autoscaling };
    const conditions = (status.conditions ?? []).map((c) => (c.type === PoolCondition.Ready ? { ...c, status: 'False' as const, reason: PoolReadyReason.Deleting, message } : c));
    await patchStatus(ctx, pool, { ...status, conditions });
    return;
  }
  // No reliance on the garbage collector: the pool's budget goes with it.
  await syncDisruptionBudget(ctx, pool, undefined);
  await removeFinalizer(ctx.client, WORKERPOOL_REF, pool, FINALIZER_WORKERPOOL);
  ctx.demand.stop(key);
  ctx.backends.forget(key);
  ctx.expectations.forget(key);
}

interface StatusExtras {
  readonly template?: TemplateVerdict;
  /** The size worked towards (spec.poolSize unless autoscaled). */
  readonly desired?: number;
  readonly autoscale?: Recommendation;
}

async function writeStatus(ctx: ControllerContext, pool: WorkerPoolObject, credentials: CredentialsState, workers: WorkerObject[], extras: StatusExtras = {}): Promise<void> {
  const { template, autoscale } = extras;
  const generation = pool.metadata.generation;
  // While the credentials are broken the autoscaler does not run: its last decision stands.
  const desired = extras.desired ?? pool.status?.autoscaling?.recommendation ?? pool.spec.poolSize ?? 1;
  const status = computePoolStatus(pool, credentials, workers, new Date(), pool.spec.autoscaling === undefined ? (pool.spec.poolSize ?? 1) : desired);
  let conditions = status.conditions;
  if (template !== undefined) {
    conditions = setCondition(
      conditions,
      {
        type: PoolCondition.PodTemplateValid,
        status: template.valid ? 'True' : 'False',
        reason: template.valid ? PodTemplateReason.DryRunPassed : PodTemplateReason.DryRunFailed,
        message: template.message,
      },
      generation,
    );
  }
  if (autoscale !== undefined) {
    const ignored = pool.spec.poolSize !== undefined && pool.spec.poolSize !== autoscale.size ? `; spec.poolSize (${pool.spec.poolSize}) is ignored while spec.autoscaling is set` : '';
    conditions = setCondition(conditions, { type: PoolCondition.Autoscaling, status: 'True', reason: autoscale.reason, message: `${autoscale.message}${ignored}` }, generation);
  } else if (pool.spec.autoscaling === undefined && findCondition(conditions, PoolCondition.Autoscaling) !== undefined) {
    conditions = setCondition(conditions, { type: PoolCondition.Autoscaling, status: 'False', reason: AutoscalingReason.Disabled, message: 'spec.autoscaling is not set: spec.poolSize decides the size' }, generation);
  }
  const autoscaling = pool.spec.autoscaling === undefined ? undefined : (autoscale?.status ?? pool.status?.autoscaling);
  await patchStatus(ctx, pool, { ...status, conditions, autoscaling });
}

/** `next` as a merge patch that replaces `previous` whole: fields it drops are removed (null), not kept. */
function replacing(previous: object | undefined, next: object | undefined): Record<string, unknown> | null {
  if (next === undefined) return null;
  const patch: Record<string, unknown> = { ...next };
  for (const key of Object.keys(previous ?? {})) if (patch[key] === undefined) patch[key] = null;
  return patch;
}

async function patchStatus(ctx: ControllerContext, pool: WorkerPoolObject, status: WorkerPoolStatus): Promise<void> {
  if (!statusChanged(pool.status, status)) return;
  // A merge patch of the whole status: absent fields (actualPoolSize while credentials are broken) are removed with null.
  const body = {
    status: { ...status, actualPoolSize: status.actualPoolSize ?? null, selector: status.selector ?? null, autoscaling: replacing(pool.status?.autoscaling, status.autoscaling) },
  };
  await ignoreNotFound(ctx.client.mergePatch(WORKERPOOL_REF, pool.metadata.namespace, pool.metadata.name ?? '', body, { subresource: 'status' }));
}
