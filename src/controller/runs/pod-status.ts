/**
 * What a run Pod's status means for its run: pending, running, succeeded or
 * failed (with a reason a person can act on and the `worker` exit code), and
 * whether a Pod that has not started yet is stuck in a condition that will not
 * clear by itself (an image that cannot be pulled, a missing Secret, no node
 * that fits, a sidecar that keeps crashing).
 *
 * Pure functions of the Pod object. Both client-node's models (`Date` fields)
 * and the JSON the API serves (RFC 3339 strings) are accepted.
 *
 * @module
 */
import { CONTAINER_WORKER } from '../../api/constants.js';
import { formatDuration } from '../../runtime/duration.js';

/** A timestamp as client-node's models (`Date`) or the wire (RFC 3339) have it. */
export type Timestamp = string | Date;

export interface ContainerStateView {
  readonly waiting?: { readonly reason?: string; readonly message?: string };
  readonly running?: { readonly startedAt?: Timestamp };
  readonly terminated?: {
    readonly exitCode: number;
    readonly reason?: string;
    readonly message?: string;
    readonly startedAt?: Timestamp;
    readonly finishedAt?: Timestamp;
  };
}

export interface ContainerStatusView {
  readonly name: string;
  readonly state?: ContainerStateView;
  readonly lastState?: ContainerStateView;
  readonly restartCount?: number;
}

export interface PodConditionView {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
  readonly lastTransitionTime?: Timestamp;
}

/** The parts of a Pod read here; `V1Pod` and its wire form both fit. */
export interface RunPodView {
  readonly metadata?: { readonly creationTimestamp?: Timestamp };
  readonly spec?: { readonly initContainers?: readonly { readonly name: string; readonly restartPolicy?: string }[] };
  readonly status?: {
    readonly phase?: string;
    readonly reason?: string;
    readonly message?: string;
    readonly startTime?: Timestamp;
    readonly conditions?: readonly PodConditionView[];
    readonly initContainerStatuses?: readonly ContainerStatusView[];
    readonly containerStatuses?: readonly ContainerStatusView[];
  };
}

export type RunPodPhase = 'pending' | 'running' | 'succeeded' | 'failed';

/** Waiting reasons of a container that mean the Pod cannot start until something changes. */
export const CANNOT_START_REASONS = [
  'ImagePullBackOff',
  'ErrImagePull',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'CrashLoopBackOff',
] as const;

export type CannotStartReason = (typeof CANNOT_START_REASONS)[number] | 'Unschedulable';

/**
 * Reasons that no amount of waiting fixes: the run fails at once, without the
 * grace. (`InvalidImageName`: the reference itself is malformed.)
 */
export const PERMANENT_REASONS: ReadonlySet<CannotStartReason> = new Set<CannotStartReason>(['InvalidImageName']);

export interface CannotStart {
  readonly reason: CannotStartReason;
  /** The container that cannot start; absent for `Unschedulable`. */
  readonly container?: string;
  /** Whether `container` is an init container (including native sidecars). */
  readonly initContainer?: boolean;
  /** Kubernetes' explanation (the waiting message or the condition message). */
  readonly message: string;
  /** Exit code of the last crash, for `CrashLoopBackOff`. */
  readonly lastExitCode?: number;
  /**
   * Since when the Pod has been held up at this step: the moment the step
   * began (the previous init container ended or started, init completed, or
   * the scheduling condition changed). Kubernetes records no time for waiting
   * states, so this is the earliest time the condition can have begun.
   */
  readonly since: Date;
  /** False when no timestamp was available and `since` is the `now` the caller passed. */
  readonly sinceKnown: boolean;
}

export interface RunPodStatus {
  readonly phase: RunPodPhase;
  /** Why the run failed (phase `failed`), ready for the backend and for people. */
  readonly reason?: string;
  /** Exit code of the `worker` container, when it has terminated. */
  readonly exitCode?: number;
  /** When the run ended (phase `succeeded`/`failed`), when the Pod says. */
  readonly finishedAt?: Date;
  /** Phase `pending` only: what keeps the Pod from starting, if anything known. */
  readonly cannotStart?: CannotStart;
  /** Same as `cannotStart.since`. */
  readonly stuckSince?: Date;
}

const MAX_DETAIL = 300;

function toDate(t: Timestamp | undefined): Date | undefined {
  if (t === undefined) return undefined;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function clip(s: string): string {
  const one = s.trim().replace(/\s+/g, ' ');
  return one.length > MAX_DETAIL ? `${one.slice(0, MAX_DETAIL - 3)}...` : one;
}

function condition(pod: RunPodView, type: string): PodConditionView | undefined {
  return pod.status?.conditions?.find((c) => c.type === type);
}

function isSidecar(pod: RunPodView, name: string): boolean {
  return pod.spec?.initContainers?.find((c) => c.name === name)?.restartPolicy === 'Always';
}

type Terminated = NonNullable<ContainerStateView['terminated']>;

/** `worker container exited with code 2 (Error)`, `init container "init" ran out of memory (OOMKilled, exit code 137)`. */
export function describeTermination(container: string, t: Terminated): string {
  const who = container === CONTAINER_WORKER ? 'worker container' : `init container ${JSON.stringify(container)}`;
  const detail = t.message !== undefined && t.message.trim() !== '' ? `: ${clip(t.message)}` : '';
  if (t.reason === 'OOMKilled') return `${who} ran out of memory (OOMKilled, exit code ${t.exitCode})${detail}`;
  const why = t.reason !== undefined && t.reason !== '' ? ` (${t.reason})` : '';
  return `${who} exited with code ${t.exitCode}${why}${detail}`;
}

/** The first regular (non-sidecar) init container that ended with a non-zero code; with `restartPolicy: Never` the Pod is done. */
function failedInit(pod: RunPodView): { name: string; terminated: Terminated } | undefined {
  for (const s of pod.status?.initContainerStatuses ?? []) {
    const t = s.state?.terminated;
    if (t !== undefined && t.exitCode !== 0 && !isSidecar(pod, s.name)) return { name: s.name, terminated: t };
  }
  return undefined;
}

function podLevelReason(pod: RunPodView): string | undefined {
  const reason = pod.status?.reason;
  const message = pod.status?.message;
  const msg = message !== undefined && message.trim() !== '' ? `: ${clip(message)}` : '';
  switch (reason) {
    case undefined:
    case '':
      return undefined;
    case 'DeadlineExceeded':
      return `run exceeded the Pod's deadline (activeDeadlineSeconds, DeadlineExceeded)${msg}`;
    case 'Evicted':
      return `Pod was evicted (Evicted)${msg}`;
    default:
      return `Pod failed (${reason})${msg}`;
  }
}

function failureReason(pod: RunPodView, worker: Terminated | undefined): string {
  const parts: string[] = [];
  const podReason = podLevelReason(pod);
  if (podReason !== undefined) parts.push(podReason);
  if (worker !== undefined) parts.push(describeTermination(CONTAINER_WORKER, worker));
  else {
    const init = failedInit(pod);
    if (init !== undefined) parts.push(describeTermination(init.name, init.terminated));
  }
  if (parts.length === 0) {
    const msg = pod.status?.message;
    parts.push(msg !== undefined && msg.trim() !== '' ? `Pod failed: ${clip(msg)}` : 'Pod failed');
  }
  return parts.join('; ');
}

function latestFinish(pod: RunPodView, worker: Terminated | undefined): Date | undefined {
  const fromWorker = toDate(worker?.finishedAt);
  if (fromWorker !== undefined) return fromWorker;
  let latest: Date | undefined;
  const consider = (d: Date | undefined): void => {
    if (d !== undefined && (latest === undefined || d > latest)) latest = d;
  };
  for (const s of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    consider(toDate(s.state?.terminated?.finishedAt));
  }
  if (latest === undefined) for (const c of pod.status?.conditions ?? []) consider(toDate(c.lastTransitionTime));
  return latest;
}

/** A container held up by `reason`, since `since` (the caller's `now` when unknown). */
function cannotStartOf(s: ContainerStatusView, reason: CannotStartReason, initContainer: boolean, since: Date | undefined, now: Date): CannotStart {
  const last = s.lastState?.terminated?.exitCode;
  return {
    reason,
    container: s.name,
    initContainer,
    message: clip(s.state?.waiting?.message ?? ''),
    since: since ?? now,
    sinceKnown: since !== undefined,
    ...(last === undefined ? {} : { lastExitCode: last }),
  };
}

/** When the step that init container `index` belongs to began. */
function initTurnStart(pod: RunPodView, statuses: readonly ContainerStatusView[], index: number): Date | undefined {
  if (index > 0) {
    const prev = statuses[index - 1].state;
    const t = toDate(prev?.terminated?.finishedAt) ?? toDate(prev?.running?.startedAt);
    if (t !== undefined) return t;
  }
  return toDate(pod.status?.startTime) ?? toDate(pod.metadata?.creationTimestamp);
}

function isCannotStart(reason: string | undefined): reason is (typeof CANNOT_START_REASONS)[number] {
  return reason !== undefined && (CANNOT_START_REASONS as readonly string[]).includes(reason);
}

function findCannotStart(pod: RunPodView, now: Date): CannotStart | undefined {
  const scheduled = condition(pod, 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = toDate(scheduled.lastTransitionTime) ?? toDate(pod.metadata?.creationTimestamp);
    return {
      reason: 'Unschedulable',
      message: clip(scheduled.message ?? ''),
      since: since ?? now,
      sinceKnown: since !== undefined,
    };
  }
  // Order the init container statuses as the spec does, which is the order they run in.
  const order = pod.spec?.initContainers?.map((c) => c.name);
  const inits = [...(pod.status?.initContainerStatuses ?? [])];
  if (order !== undefined) inits.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  for (let i = 0; i < inits.length; i++) {
    const s = inits[i];
    const reason = s.state?.waiting?.reason;
    if (!isCannotStart(reason)) continue;
    return cannotStartOf(s, reason, true, initTurnStart(pod, inits, i), now);
  }
  for (const s of pod.status?.containerStatuses ?? []) {
    const reason = s.state?.waiting?.reason;
    if (!isCannotStart(reason)) continue;
    const initialized = condition(pod, 'Initialized');
    const since =
      (initialized?.status === 'True' ? toDate(initialized.lastTransitionTime) : undefined) ??
      toDate(pod.status?.startTime) ??
      toDate(pod.metadata?.creationTimestamp);
    return cannotStartOf(s, reason, false, since, now);
  }
  return undefined;
}

/**
 * Classifies a run Pod.
 *
 * - `succeeded`: Pod phase `Succeeded`, or `worker` terminated with code 0
 *   (the Pod may still be `Running` for a moment while the kubelet stops the
 *   sidecars; the run's outcome is already known).
 * - `failed`: Pod phase `Failed`, `worker` terminated with a non-zero code, or
 *   a regular init container failed (the Pod has `restartPolicy: Never`, so
 *   nothing will retry it). The reason names the Pod-level cause first
 *   (`DeadlineExceeded`, `Evicted`, other kubelet reasons), then the `worker`
 *   container's exit code and termination reason (`OOMKilled` spelled out),
 *   or the failed init container's.
 * - `running`: `worker` is running.
 * - `pending`: anything else; `cannotStart` / `stuckSince` say what holds
 *   it, if Kubernetes reports one of {@link CANNOT_START_REASONS} or
 *   `PodScheduled=False/Unschedulable`.
 *
 * @param now used as `stuckSince` when the Pod carries no usable timestamp
 */
export function classifyRunPod(pod: RunPodView, now: Date): RunPodStatus {
  const worker = pod.status?.containerStatuses?.find((s) => s.name === CONTAINER_WORKER);
  const wt = worker?.state?.terminated;
  const phase = pod.status?.phase;

  const done = (ok: boolean): RunPodStatus => {
    const out: { -readonly [K in keyof RunPodStatus]: RunPodStatus[K] } = { phase: ok ? 'succeeded' : 'failed' };
    if (!ok) out.reason = failureReason(pod, wt);
    if (wt !== undefined) out.exitCode = wt.exitCode;
    else if (ok) out.exitCode = 0;
    const finishedAt = latestFinish(pod, wt);
    if (finishedAt !== undefined) out.finishedAt = finishedAt;
    return out;
  };

  if (phase === 'Succeeded') return done(true);
  if (phase === 'Failed') return done(false);
  if (wt !== undefined) return done(wt.exitCode === 0);
  if (failedInit(pod) !== undefined) return done(false);
  if (worker?.state?.running !== undefined) return { phase: 'running' };

  const cannotStart = findCannotStart(pod, now);
  return cannotStart === undefined ? { phase: 'pending' } : { phase: 'pending', cannotStart, stuckSince: cannotStart.since };
}

/**
 * Why Kubernetes is taking the Pod away, when it says so: the
 * `DisruptionTarget` condition that an eviction (`kubectl drain`, the
 * Eviction API), a preemption, the taint manager or the kubelet's
 * node-pressure eviction sets before the Pod is deleted or fails. Undefined
 * for a plain `kubectl delete pod`.
 */
export function disruptionOf(pod: RunPodView): string | undefined {
  const c = condition(pod, 'DisruptionTarget');
  if (c?.status !== 'True') return undefined;
  const reason = c.reason !== undefined && c.reason !== '' ? c.reason : 'DisruptionTarget';
  const message = c.message !== undefined && c.message.trim() !== '' ? `: ${clip(c.message)}` : '';
  return `the run Pod was evicted before the run ended (${reason}${message})`;
}

export type StuckVerdict =
  | {
      readonly fail: false;
      /** Check again after this long: the grace of a condition seen now runs out then. */
      readonly recheckAfterMs?: number;
    }
  | { readonly fail: true; readonly reason: string; readonly cannotStart: CannotStart };

/** `worker container cannot start (ImagePullBackOff) for 5m0s: Back-off pulling image "x"`. */
export function describeCannotStart(c: CannotStart, forMs: number): string {
  const duration = formatDuration(Math.max(0, Math.round(forMs / 1000)) * 1000);
  const detail = c.message !== '' ? `: ${c.message}` : '';
  if (c.reason === 'Unschedulable') return `run Pod cannot be scheduled (Unschedulable) for ${duration}${detail}`;
  const who = c.container === CONTAINER_WORKER ? 'worker container' : `${c.initContainer ? 'init container' : 'container'} ${JSON.stringify(c.container)}`;
  if (c.reason === 'CrashLoopBackOff') {
    const code = c.lastExitCode !== undefined ? `, last exit code ${c.lastExitCode}` : '';
    return `${who} keeps crashing (CrashLoopBackOff${code}) for ${duration}${detail}`;
  }
  return `${who} cannot start (${c.reason}) for ${duration}${detail}`;
}

/**
 * Whether a run whose Pod has not started must be failed now.
 *
 * Fails when the Pod has been held up by a {@link CannotStart} condition for
 * at least `graceMs` (at once for {@link PERMANENT_REASONS}). Otherwise, if a
 * condition is present, `recheckAfterMs` says when its grace runs out. Pods
 * that are running or finished are never stuck. The reason is ready to be
 * reported; add the Pod's recent events with {@link withRecentEvents}.
 */
export function stuckVerdict(pod: RunPodView, now: Date, graceMs: number): StuckVerdict {
  const status = classifyRunPod(pod, now);
  const c = status.cannotStart;
  if (status.phase !== 'pending' || c === undefined) return { fail: false };
  const elapsed = now.getTime() - c.since.getTime();
  if (PERMANENT_REASONS.has(c.reason) || elapsed >= graceMs) {
    return { fail: true, reason: describeCannotStart(c, elapsed), cannotStart: c };
  }
  return { fail: false, recheckAfterMs: graceMs - elapsed };
}

/** The parts of a core Event used by {@link withRecentEvents}. */
export interface EventView {
  readonly type?: string;
  readonly reason?: string;
  readonly message?: string;
}

/**
 * Appends the Pod's most recent events to a failure reason:
 * `<reason>; recent events: Warning Failed: Failed to pull image ...; ...`.
 * Events are taken in the order given (oldest first), the last `max` distinct
 * ones are kept.
 */
export function withRecentEvents(reason: string, events: readonly EventView[], max = 5): string {
  const lines: string[] = [];
  for (const e of events) {
    const line = clip([e.type, e.reason].filter((x) => x !== undefined && x !== '').join(' ') + (e.message ? `: ${e.message}` : ''));
    if (line === '') continue;
    const at = lines.indexOf(line);
    if (at >= 0) lines.splice(at, 1);
    lines.push(line);
  }
  const recent = lines.slice(-max);
  return recent.length === 0 ? reason : `${reason}; recent events: ${recent.join('; ')}`;
}
