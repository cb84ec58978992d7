/**
 * Worker reconcile: one registered worker with an open session, or, when the
 * pool shrinks, a worker that drains and leaves without killing its run.
 *
 * Order matters for crash safety: the Worker exists (made by the pool) before
 * its key, the key is stored before registration, and registration reuses
 * the Worker's id, so a controller killed at any step resumes where it was
 * without a second registration or key.
 *
 * New keys follow the pool token's protocol version (RSA under 1, ECDSA P-256
 * under 2); a key already in the Worker's Secret is kept whatever its type,
 * so moving a pool to version 2 re-registers nothing.
 */
import { ANNOTATION_DRAINING, FINALIZER_RUN_POD, FINALIZER_WORKER, LABEL_RUN_ID, LABEL_WORKER_SECRET, WORKER_KIND } from '../../api/constants.js';
import { BusyReason, CertificateReason, EventReason, RegisteredReason, WorkerCondition, type WorkerState } from '../../api/conditions.js';
import { WORKER_REF, type WorkerObject, type WorkerPoolObject, type WorkerStatus } from '../../api/types.js';
import {
  createCsr,
  RetryableBackendError,
  TerminalBackendError,
  tokenTopicNamespace,
  workerKeyTypeFor,
  type PoolToken,
  type WorkerState as ProtocolWorkerState,
} from '../../protocol/index.js';
import { setCondition, type Condition, type ConditionInput } from '../../runtime/conditions.js';
import { ignoreNotFound, isAlreadyExists } from '../../runtime/errors.js';
import { hasFinalizer, releaseAndDelete, removeFinalizer } from '../../runtime/finalizers.js';
import { statusChanged } from '../../runtime/status.js';
import { PODS, SECRETS, type Secret } from '../../runtime/k8s-client.js';
import { RetryLaterError, type ReconcileContext, type Result } from '../../runtime/queue.js';
import type { BackendApi } from '../backend/connector.js';
import type { PoolCredentials } from '../backend/credentials.js';
import { forReconcile, type ControllerContext } from '../context.js';
import { objectKey, poolKeyOf } from '../keys.js';
import { activeRunPod, cleanUpOrphans, podsOfWorker, syncRuns } from '../runs/controller.js';
import { isSecretOf, notOwnedReason } from '../runs/ownership.js';
import { certificateTimes, renewalTime, type CertificateTimes } from './certificate.js';
import { buildWorkerSecret, certificatePatch, pendingKeyPatch, readWorkerSecret, renewedPatch, type WorkerSecretContent } from './secret.js';

const BACKEND_RETRY_MS = 10_000;

/** Worker-triggered pool reconciles wait this long so that a burst of worker changes makes one status write. */
const POOL_BATCH_MS = 200;

/** Worker changes bring the Worker's own reconcile and, batched, its pool's (counts, expectations). */
export function watchWorkers(ctx: ControllerContext): void {
  const { caches, queues, expectations } = ctx;
  const onWorker = (w: WorkerObject): void => {
    expectations.observe(poolKeyOf(w), w.metadata.name ?? '', w.metadata.annotations?.[ANNOTATION_DRAINING] === 'true');
    queues.workers.add(objectKey(w));
    queues.pools.addAfter(poolKeyOf(w), POOL_BATCH_MS);
  };
  caches.workers.addEventHandler({
    onAdd: onWorker,
    onUpdate: (_old, w) => onWorker(w),
    onDelete: (w) => {
      queues.workers.add(objectKey(w));
      queues.pools.addAfter(poolKeyOf(w), POOL_BATCH_MS);
    },
  });
  // A Worker's own Secret changed or vanished (deleted or emptied by hand): the Worker makes it again.
  const onSecret = (s: Secret): void => {
    const owner = s.metadata?.labels?.[LABEL_WORKER_SECRET];
    if (owner !== undefined && s.metadata?.namespace !== undefined) queues.workers.add(`${s.metadata.namespace}/${owner}`);
  };
  caches.secrets.addEventHandler({ onAdd: onSecret, onUpdate: (_o, s) => onSecret(s), onDelete: onSecret });
}

interface Access {
  readonly pool: WorkerPoolObject;
  readonly poolKey: string;
  readonly credentials: PoolCredentials;
  readonly backend: BackendApi;
}

/** The pool's credentials and backend client, or why they cannot be had. */
async function access(ctx: ControllerContext, worker: WorkerObject): Promise<Access | { readonly problem: string }> {
  const poolKey = poolKeyOf(worker);
  const pool = ctx.caches.pools.getByKey(poolKey);
  if (pool === undefined) return { problem: `WorkerPool ${poolKey} not found` };
  const credentials = await ctx.backends.credentials(pool);
  if (!credentials.ok) return { problem: `the pool's credentials cannot be used: ${credentials.message}` };
  return { pool, poolKey, credentials: credentials.credentials, backend: ctx.backends.client(poolKey, credentials.credentials) };
}

export async function reconcileWorker(base: ControllerContext, key: string, rc: ReconcileContext): Promise<Result | void> {
  const ctx = forReconcile(base, rc.signal);
  const worker = ctx.caches.workers.getByKey(key);
  if (worker === undefined) {
    ctx.keys.forget(key);
    ctx.registrations.forget(key);
    ctx.runs.forgetWorker(key);
    await ctx.sessions.close(key);
    await cleanUpOrphans(ctx, key);
    return;
  }
  if (worker.metadata.deletionTimestamp !== undefined) return finalizeWorker(ctx, key, worker);

  const a = await access(ctx, worker);
  if ('problem' in a) {
    // The pool reports the credential problem; its Secret watch brings every worker back when it is fixed.
    await writeStatus(ctx, worker, { registered: worker.status?.registered ?? false, connected: ctx.sessions.isConnected(key), state: worker.status?.state ?? 'Pending' }, { status: 'False', reason: RegisteredReason.CredentialsUnavailable, message: a.problem });
    return;
  }

  let content;
  try {
    const secret = await ensureKey(ctx, key, worker, a.credentials.token);
    if (secret === undefined) return;
    if ('conflict' in secret) {
      // Someone else's Secret under the Worker's name: never adopted, never overwritten.
      await ctx.events.record(worker, 'Warning', EventReason.WorkerSecretConflict, secret.conflict);
      await writeStatus(ctx, worker, { registered: false, connected: false, state: 'Failed' }, { status: 'False', reason: RegisteredReason.SecretConflict, message: secret.conflict });
      throw new RetryLaterError(secret.conflict, 60_000);
    }
    content = ctx.registrations.complete(key, readWorkerSecret(secret));
    if (content.certificatePem === undefined || content.caPem === undefined) {
      const registered = await register(ctx, worker, a, content.privateKeyPem as string);
      if (registered === undefined) return;
      content = { ...content, ...registered };
      ctx.registrations.written(key, { privateKeyPem: content.privateKeyPem as string, ...registered });
      ctx.observer?.onWorkerRegistered?.(worker.metadata.creationTimestamp);
    }
  } catch (err) {
    // Worker creation = key, stored key, registration: each failed attempt counts.
    ctx.observer?.onWorkerCreationFailed?.(err);
    throw err;
  }
  const certificate = await keepCertificateCurrent(ctx, key, worker, a, content);
  content = certificate.content;

  const runs = await syncRuns(ctx, worker, a.pool);
  const draining = worker.metadata.annotations?.[ANNOTATION_DRAINING] === 'true';
  let state: WorkerState;
  if (draining) {
    const drained = await drain(ctx, key, worker, a, runs.activeRunId !== undefined);
    if (drained === 'gone') return;
    state = 'Draining';
  } else {
    if (worker.status?.state === 'Draining') await a.backend.undrain(worker.spec.workerId, { signal: ctx.signal });
    state = runs.activeRunId !== undefined ? 'Busy' : ctx.sessions.isConnected(key) ? 'Idle' : 'Pending';
  }

  const protocolState: ProtocolWorkerState = state === 'Draining' ? 'draining' : runs.activeRunId !== undefined ? 'busy' : 'idle';
  ctx.sessions.ensure(key, {
    brokerUrl: a.credentials.token.brokerUrl,
    topicNamespace: tokenTopicNamespace(a.credentials.token),
    credentials: {
      poolId: a.credentials.token.poolId,
      workerId: worker.spec.workerId,
      certificatePem: content.certificatePem as string,
      privateKeyPem: content.privateKeyPem as string,
      caPem: content.caPem as string,
    },
    initialState: { state: protocolState, runId: runs.activeRunId },
  });
  // Unchanged states are not re-sent; a publish that fails is re-sent with the next heartbeat.
  void ctx.sessions.setState(key, protocolState, runs.activeRunId).catch(() => undefined);

  const after = [runs.requeueAfter, certificate.recheckAfterMs].filter((ms): ms is number => ms !== undefined);
  if (ctx.sessions.isOpening(key)) {
    // A session still opening connects, or fails (at the latest when its connect times out), and
    // either brings the Worker back here: the status is written then, once, rather than
    // "not connected" now and "connected" a moment later, also by the reconciles that come
    // meanwhile. A new worker's scale-out costs one status write fewer (PATCH workers/status
    // 2.02 -> 1.24 per worker at N = 1000), and a restarted controller no longer flips every
    // connected Worker to "connected: false" and back (1492 status writes in the recovery at
    // N = 1000 when only the reconcile that opened the session held back).
    return after.length === 0 ? undefined : { requeueAfter: Math.min(...after) };
  }
  await writeStatus(
    ctx,
    worker,
    { registered: true, connected: ctx.sessions.isConnected(key), state, currentRunID: runs.activeRunId },
    { status: 'True', reason: RegisteredReason.Registered, message: `registered as ${worker.spec.workerId}` },
    certificate.condition,
  );
  return after.length === 0 ? undefined : { requeueAfter: Math.min(...after) };
}

/** Longest wait between two looks at a certificate (timers this long are fine, but a clock may jump). */
const CERT_RECHECK_MAX_MS = 6 * 3600_000;
/** A failed renewal is retried after this long (or sooner, before the certificate expires). */
const RENEWAL_RETRY_MS = 60_000;

interface CertificateState {
  readonly content: WorkerSecretContent;
  readonly condition?: Omit<ConditionInput, 'type'>;
  readonly recheckAfterMs?: number;
}

/**
 * Renews the worker's certificate once two thirds of its lifetime have
 * passed, without interrupting the worker: the new key is stored before the
 * backend is asked (a controller killed meanwhile finishes with the same key),
 * the new key and certificate replace the old ones in one write, and the
 * session then switches over with a clean disconnect (no will: the backend
 * does not see the worker go offline) while its persistent session keeps any
 * message sent meanwhile. The backend revokes the old certificate when it
 * issues the new one. A failure is a Warning event and the CertificateValid
 * condition, retried; the current certificate stays in use until it expires.
 */
async function keepCertificateCurrent(ctx: ControllerContext, key: string, worker: WorkerObject, a: Access, content: WorkerSecretContent): Promise<CertificateState> {
  const times = certificateTimes(content.certificatePem);
  // Not an X.509 certificate this process can read (a test double's): nothing to renew.
  if (times === undefined) return { content };
  const now = Date.now();
  const renewAt = renewalTime(times);
  const until = new Date(times.notAfter).toISOString();
  const current = (t: CertificateTimes): Omit<ConditionInput, 'type'> => ({
    status: 'True',
    reason: CertificateReason.Current,
    message: `certificate ${t.serial.toLowerCase()} valid until ${new Date(t.notAfter).toISOString()}; renewed after ${new Date(renewalTime(t)).toISOString()}`,
  });
  if (content.nextPrivateKeyPem === undefined && now < renewAt) {
    return { content, condition: current(times), recheckAfterMs: Math.min(renewAt - now, CERT_RECHECK_MAX_MS) };
  }
  const namespace = worker.metadata.namespace;
  const name = worker.metadata.name ?? '';
  try {
    let next = content.nextPrivateKeyPem;
    if (next === undefined) {
      // Made outside this reconcile like the first key; the factory brings the worker back when it is ready.
      const pair = ctx.keys.take(key, workerKeyTypeFor(a.credentials.token.protocolVersion));
      if (pair === undefined) return { content, condition: current(times) };
      await ctx.client.mergePatch(SECRETS, namespace, name, pendingKeyPatch(pair.privateKeyPem));
      next = pair.privateKeyPem;
    }
    const res = await a.backend.register(await createCsr(next, worker.spec.workerId), worker.spec.workerId, { signal: ctx.signal });
    await ctx.client.mergePatch(SECRETS, namespace, name, renewedPatch(next, res.certificatePem, res.caPem));
    const renewed = { privateKeyPem: next, certificatePem: res.certificatePem, caPem: res.caPem };
    ctx.registrations.written(key, { ...renewed, replaces: content.certificatePem });
    const fresh = certificateTimes(res.certificatePem);
    const message = `certificate renewed: ${fresh === undefined ? 'new certificate' : `${fresh.serial.toLowerCase()} valid until ${new Date(fresh.notAfter).toISOString()}`}`;
    ctx.log.with({ namespace, name, kind: WORKER_KIND }).info('worker certificate renewed', { workerId: worker.spec.workerId, serial: fresh?.serial });
    await ctx.events.record(worker, 'Normal', EventReason.WorkerCertificateRenewed, message);
    if (fresh === undefined) return { content: renewed };
    return { content: renewed, condition: current(fresh), recheckAfterMs: Math.min(Math.max(renewalTime(fresh) - Date.now(), 1_000), CERT_RECHECK_MAX_MS) };
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    const cause = err instanceof Error ? err.message : String(err);
    const expired = now >= times.notAfter;
    const message = expired
      ? `certificate renewal failed: ${cause}; the certificate expired at ${until} and the broker refuses it until a renewal succeeds`
      : `certificate renewal failed: ${cause}; the current certificate stays in use until ${until}`;
    ctx.log.with({ namespace, name, kind: WORKER_KIND }).warn('worker certificate renewal failed', { workerId: worker.spec.workerId, cause });
    await ctx.events.record(worker, 'Warning', EventReason.WorkerCertificateRenewalFailed, message);
    return {
      content,
      condition: { status: expired ? 'False' : 'True', reason: expired ? CertificateReason.Expired : CertificateReason.RenewalFailed, message },
      recheckAfterMs: expired ? RENEWAL_RETRY_MS : Math.min(RENEWAL_RETRY_MS, Math.max(times.notAfter - now, 1_000)),
    };
  }
}

/**
 * The Worker's Secret with its private key, made (and stored) before
 * registration; undefined while the key is being made; a conflict when a
 * Secret of that name exists that the Worker does not own.
 */
async function ensureKey(ctx: ControllerContext, key: string, worker: WorkerObject, token: PoolToken): Promise<Secret | { readonly conflict: string } | undefined> {
  const namespace = worker.metadata.namespace;
  const name = worker.metadata.name ?? '';
  const conflict = { conflict: notOwnedReason('Secret', `${namespace ?? ''}/${name}`, worker) };
  const cached = ctx.caches.secrets.get(namespace, name);
  if (cached !== undefined && !isSecretOf(cached, worker)) return conflict;
  // A key stored before is used as it is, whatever its type: an RSA worker of protocol version 1 stays one.
  if (cached !== undefined && readWorkerSecret(cached).privateKeyPem !== undefined) return cached;
  // Made outside this reconcile, which comes back when it is ready (see key-factory.ts), of the type the token's version says.
  const keys = ctx.keys.take(key, workerKeyTypeFor(token.protocolVersion));
  if (keys === undefined) return undefined;
  const poolId = token.poolId;
  if (cached !== undefined) {
    // Emptied by hand: a new key, and with it a new registration (the old certificate is for the old key).
    const fresh = buildWorkerSecret(worker, poolId, keys.privateKeyPem);
    return ctx.client.replace(SECRETS, namespace, name, { ...fresh, metadata: { ...fresh.metadata, resourceVersion: cached.metadata?.resourceVersion } });
  }
  try {
    return await ctx.client.create(SECRETS, namespace, buildWorkerSecret(worker, poolId, keys.privateKeyPem));
  } catch (err) {
    // Made by an earlier attempt the cache has not shown yet: its key wins, ours is dropped unused.
    // Or made by someone else: then it is not ours to use.
    if (isAlreadyExists(err)) {
      const existing = await ctx.client.get(SECRETS, namespace, name);
      return isSecretOf(existing, worker) ? existing : conflict;
    }
    throw err;
  }
}

async function register(ctx: ControllerContext, worker: WorkerObject, a: Access, privateKeyPem: string): Promise<{ certificatePem: string; caPem: string } | undefined> {
  const log = ctx.log.with({ namespace: worker.metadata.namespace, name: worker.metadata.name, kind: WORKER_KIND });
  try {
    const res = await a.backend.register(await createCsr(privateKeyPem, worker.spec.workerId), worker.spec.workerId, { signal: ctx.signal });
    await ctx.client.mergePatch(SECRETS, worker.metadata.namespace, worker.metadata.name ?? '', certificatePatch(res.certificatePem, res.caPem));
    log.info('worker registered', { workerId: worker.spec.workerId });
    return { certificatePem: res.certificatePem, caPem: res.caPem };
  } catch (err) {
    if (err instanceof TerminalBackendError) {
      log.warn('backend refused the registration', { cause: err.message });
      await ctx.events.record(worker, 'Warning', EventReason.WorkerRegistrationRefused, err.message);
      await writeStatus(ctx, worker, { registered: false, connected: false, state: 'Failed' }, { status: 'False', reason: RegisteredReason.RegistrationRefused, message: err.message });
      ctx.queues.pools.add(a.poolKey);
      throw new RetryLaterError(err.message, 60_000, { cause: err });
    }
    if (err instanceof RetryableBackendError) {
      await writeStatus(ctx, worker, { registered: false, connected: false, state: 'Pending' }, { status: 'False', reason: RegisteredReason.BackendUnreachable, message: err.message });
    }
    throw err;
  }
}

/**
 * A worker chosen to leave: drained in the backend so no new run comes, and
 * deleted only once it is confirmed idle. A busy worker stays until its run ends.
 */
async function drain(ctx: ControllerContext, key: string, worker: WorkerObject, a: Access, hasRun: boolean): Promise<'waiting' | 'gone'> {
  const { busy } = await a.backend.drain(worker.spec.workerId, { signal: ctx.signal });
  if (hasRun || busy) return 'waiting';
  await ctx.sessions.close(key);
  await ignoreNotFound(ctx.client.delete(WORKER_REF, worker.metadata.namespace, worker.metadata.name ?? ''));
  return 'gone';
}

async function finalizeWorker(ctx: ControllerContext, key: string, worker: WorkerObject): Promise<Result | void> {
  if (!hasFinalizer(worker, FINALIZER_WORKER)) return;
  const namespace = worker.metadata.namespace;
  const a = await access(ctx, worker);
  const pods = podsOfWorker(ctx, worker);
  const active = activeRunPod(ctx, pods);
  if (active !== undefined && !('problem' in a)) {
    // Deleting a Worker never kills its run: it drains and waits; pod events bring it back.
    await syncRuns(ctx, worker, a.pool);
    await a.backend.drain(worker.spec.workerId, { signal: ctx.signal }).catch(() => undefined);
    await writeStatus(ctx, worker, { ...worker.status, state: 'Draining' }, { status: 'True', reason: RegisteredReason.WaitingForRun, message: `deletion waits for run ${active.metadata?.labels?.[LABEL_RUN_ID] ?? ''} to end` });
    return;
  }

  await ctx.sessions.close(key);
  if ('problem' in a) {
    await writeStatus(ctx, worker, { ...worker.status, connected: false }, { status: 'False', reason: RegisteredReason.CannotDeregister, message: `cannot deregister from the backend: ${a.problem}` });
    throw new RetryLaterError(a.problem, BACKEND_RETRY_MS);
  }
  try {
    await a.backend.deregister(worker.spec.workerId, { signal: ctx.signal });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await writeStatus(ctx, worker, { ...worker.status, connected: false }, { status: 'False', reason: err instanceof RetryableBackendError ? RegisteredReason.BackendUnreachable : RegisteredReason.CannotDeregister, message: `cannot deregister from the backend: ${message}` });
    throw new RetryLaterError(message, BACKEND_RETRY_MS, { cause: err });
  }

  // No reliance on the garbage collector: the Secret and ended run Pods go now.
  // Only its own: a Secret someone else put under the Worker's name is left alone.
  const own = ctx.caches.secrets.get(namespace, worker.metadata.name ?? '');
  if (own !== undefined && isSecretOf(own, worker)) await ignoreNotFound(ctx.client.delete(SECRETS, namespace, worker.metadata.name ?? ''));
  for (const pod of pods) await releaseAndDelete(ctx.client, PODS, pod, FINALIZER_RUN_POD);
  await removeFinalizer(ctx.client, WORKER_REF, worker, FINALIZER_WORKER);
  ctx.log.with({ namespace, name: worker.metadata.name, kind: WORKER_KIND }).info('worker deregistered', { workerId: worker.spec.workerId });
}

async function writeStatus(
  ctx: ControllerContext,
  worker: WorkerObject,
  next: WorkerStatus,
  registered: Omit<Condition, 'type' | 'lastTransitionTime' | 'observedGeneration'>,
  certificate?: Omit<ConditionInput, 'type'>,
): Promise<void> {
  const generation = worker.metadata.generation;
  let conditions = setCondition(worker.status?.conditions, { type: WorkerCondition.Registered, ...registered }, generation);
  if (certificate !== undefined) conditions = setCondition(conditions, { ...certificate, type: WorkerCondition.CertificateValid }, generation);
  const busy = next.state === 'Busy' || (next.state === 'Draining' && next.currentRunID !== undefined);
  conditions = setCondition(
    conditions,
    { type: WorkerCondition.Busy, status: busy ? 'True' : 'False', reason: busy ? BusyReason.RunInProgress : BusyReason.NoRun, message: busy ? `running ${next.currentRunID ?? ''}` : 'no run in progress' },
    generation,
  );
  const status: WorkerStatus = { ...next, observedGeneration: generation, conditions };
  if (!statusChanged(worker.status, status)) return;
  await ignoreNotFound(
    ctx.client.mergePatch(WORKER_REF, worker.metadata.namespace, worker.metadata.name ?? '', { status: { ...status, currentRunID: status.currentRunID ?? null } }, { subresource: 'status' }),
  );
}
