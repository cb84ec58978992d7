/**
 * The run timeouts of a run Pod: the Pod's `activeDeadlineSeconds` (a hard
 * kill by the kubelet) and the launcher's own limits on the `worker`
 * container, `SPACELIFT_LAUNCHER_RUN_TIMEOUT` (whole run) and
 * `SPACELIFT_LAUNCHER_LOGS_TIMEOUT` (log silence), both Go durations.
 *
 * ## Sources
 *
 * - the pool: `spec.pod.activeDeadlineSeconds`, and the two variables when the
 *   pool sets them with a literal `value` in `spec.pod.workerContainer.env`;
 * - the backend: `timeouts.runSeconds` / `timeouts.logsSeconds` of the
 *   schedule message (the stack's own limits).
 *
 * ## Rules
 *
 * 1. **The earliest limit wins.** The pool (the cluster's owner) and the
 *    backend (the stack's owner) may both limit a run; a run must respect
 *    every limit, so the effective run timeout is the smallest one given, and
 *    likewise for the log-silence timeout. Neither side can lengthen a run
 *    beyond what the other allows.
 * 2. **The deadline is the run timeout plus a margin** of
 *    {@link DEADLINE_MARGIN_SECONDS} (5 minutes). `activeDeadlineSeconds` is
 *    counted from the moment the kubelet accepts the Pod, so it also covers
 *    image pulls and the `init` container, while the launcher counts its run
 *    timeout from when the run starts. The launcher's timeout is the graceful
 *    one (it stops the run, uploads what it has and reports); the deadline is
 *    the backstop for a launcher that hangs. Were they equal, the deadline
 *    would always fire first and the graceful path would never be taken.
 * 3. **Deriving one from the other.** When the pool sets only
 *    `activeDeadlineSeconds = d`, the run timeout is
 *    `max(d - 300, ceil(d / 2))` seconds (the docs' 4200 gives `1h5m0s`), so
 *    the graceful timeout fires inside the hard budget the pool set. When only
 *    a run timeout `r` is known (pool variable or message), the deadline is
 *    `ceil(r) + 300` (the docs' `70m` gives 4500). When the pool sets both, both
 *    are used as written (a warning is returned if the deadline is not longer
 *    than the run timeout); a shorter message limit still lowers both.
 * 4. **Pool variables are inputs, not pass-through.** A literal
 *    `SPACELIFT_LAUNCHER_RUN_TIMEOUT` / `..._LOGS_TIMEOUT` in
 *    `workerContainer.env` is parsed (an invalid one is an
 *    {@link InvalidTimeoutError} naming the field and value) and the effective
 *    value is set in its place (the pool's text is kept verbatim when it is the
 *    effective value). A variable taken from `valueFrom` cannot be read: it is
 *    left on the container untouched, does not take part in the derivation, and
 *    a warning says so.
 * 5. Nothing set anywhere: no deadline and no variables (the launcher's own
 *    defaults apply).
 *
 * @module
 */
import type { V1EnvVar } from '@kubernetes/client-node';
import type { ScheduleMessage } from '../../protocol/messages.js';
import type { WorkerPoolSpec } from '../../api/types.js';
import { DurationError, formatDurationNs, parseDurationNs } from '../../runtime/duration.js';

/** The launcher's whole-run limit, a Go duration, on the `worker` container. */
export const ENV_RUN_TIMEOUT = 'SPACELIFT_LAUNCHER_RUN_TIMEOUT';
/** The launcher's log-silence limit, a Go duration, on the `worker` container. */
export const ENV_LOGS_TIMEOUT = 'SPACELIFT_LAUNCHER_LOGS_TIMEOUT';

/** Time the Pod deadline leaves beyond the run timeout, for image pulls, `init` and the final upload. */
export const DEADLINE_MARGIN_SECONDS = 300;

/**
 * A pool setting or schedule message that makes a run impossible. The
 * reconciler reports the run `failed` with {@link RunConfigError.message} and
 * creates no Pod; retrying cannot help until the configuration changes.
 */
export class RunConfigError extends Error {
  /**
   * @param field where the bad value is, e.g. `spec.pod.workerContainer.env[2].value`
   * @param value the offending value (as given), for logs
   */
  constructor(
    readonly field: string,
    readonly value: unknown,
    message: string,
  ) {
    super(message);
    this.name = 'RunConfigError';
  }
}

/** A timeout the pool sets that is not usable (unparseable, zero or negative). */
export class InvalidTimeoutError extends RunConfigError {
  constructor(field: string, value: unknown, problem: string) {
    super(field, value, `invalid ${field}: ${JSON.stringify(value)} ${problem}`);
    this.name = 'InvalidTimeoutError';
  }
}

/** The outcome of {@link resolveRunTimeouts}. */
export interface RunTimeouts {
  /** `spec.activeDeadlineSeconds` of the Pod; absent means no deadline. */
  readonly activeDeadlineSeconds?: number;
  /** Effective run timeout in seconds, when the controller knows it. */
  readonly runTimeoutSeconds?: number;
  /** Effective log-silence timeout in seconds, when the controller knows it. */
  readonly logsTimeoutSeconds?: number;
  /**
   * Variables to set on the `worker` container. Entries of the same name in
   * the pool's `workerContainer.env` were consumed as inputs and must be
   * dropped from it (the builder does).
   */
  readonly env: readonly V1EnvVar[];
  /** Things a user should be told (logged / evented by the reconciler); the run goes ahead. */
  readonly warnings: readonly string[];
}

type UserDuration =
  | { readonly kind: 'absent' }
  | { readonly kind: 'opaque' }
  | { readonly kind: 'value'; readonly seconds: number; readonly text: string };

interface Limit {
  readonly seconds: number;
  /** Verbatim text to put in the variable, when the limit came from the pool's variable. */
  readonly text?: string;
}

/** The run timeout derived from a Pod deadline alone (rule 3). */
export function runTimeoutForDeadline(deadlineSeconds: number): number {
  return Math.max(deadlineSeconds - DEADLINE_MARGIN_SECONDS, Math.ceil(deadlineSeconds / 2));
}

/** The Pod deadline derived from a run timeout (rule 2). */
export function deadlineForRunTimeout(runTimeoutSeconds: number): number {
  return Math.ceil(runTimeoutSeconds) + DEADLINE_MARGIN_SECONDS;
}

/** Whole seconds as a Go duration string (`4200` -> `1h10m0s`), which Go's `time.ParseDuration` reads back. */
export function formatSeconds(seconds: number): string {
  return formatDurationNs(BigInt(seconds) * 1_000_000_000n);
}

function readUserDuration(env: readonly V1EnvVar[], name: string): UserDuration {
  let index = -1;
  env.forEach((e, i) => {
    if (e.name === name) index = i; // the last entry wins, as in Kubernetes
  });
  if (index < 0) return { kind: 'absent' };
  const entry = env[index];
  // Kubernetes takes valueFrom when value is empty, as the API server allows both only then.
  if (entry.valueFrom !== undefined && (entry.value ?? '') === '') return { kind: 'opaque' };
  const field = `spec.pod.workerContainer.env[${index}] (${name})`;
  const raw = entry.value ?? '';
  // Trimmed here and in what the Pod gets: Go's time.ParseDuration in the launcher refuses blanks.
  const text = raw.trim();
  let ns: bigint;
  try {
    ns = parseDurationNs(text);
  } catch (err) {
    if (err instanceof DurationError) {
      throw new InvalidTimeoutError(field, raw, `is not a Go duration such as "70m" or "1h30m" (${err.message})`);
    }
    throw err;
  }
  if (ns <= 0n) throw new InvalidTimeoutError(field, raw, 'must be longer than zero');
  return { kind: 'value', seconds: Number(ns) / 1e9, text };
}

function earliest(...limits: (Limit | undefined)[]): Limit | undefined {
  let best: Limit | undefined;
  for (const l of limits) if (l !== undefined && (best === undefined || l.seconds < best.seconds)) best = l;
  return best;
}

function minDefined(...values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : Math.min(...defined);
}

function checkMessageSeconds(field: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1) throw new InvalidTimeoutError(field, v, 'must be a whole number of seconds, at least 1');
  return v;
}

function asEnvValue(limit: Limit): string {
  return limit.text ?? formatSeconds(Math.ceil(limit.seconds));
}

/**
 * Computes the Pod deadline and the launcher's timeout variables of one run
 * (rules in the module documentation).
 *
 * @param spec the pool's spec (`spec.pod.activeDeadlineSeconds`, `spec.pod.workerContainer.env`)
 * @param message the schedule message's `timeouts`
 * @throws InvalidTimeoutError when a pool value cannot be used
 */
export function resolveRunTimeouts(spec: WorkerPoolSpec, message: ScheduleMessage['timeouts'] = {}): RunTimeouts {
  const pod = spec.pod;
  const warnings: string[] = [];

  const deadline = pod?.activeDeadlineSeconds;
  if (deadline !== undefined && (!Number.isInteger(deadline) || deadline < 1)) {
    throw new InvalidTimeoutError('spec.pod.activeDeadlineSeconds', deadline, 'must be a whole number of seconds, at least 1');
  }
  // The schema keeps embedded Kubernetes objects whole (the API server validates them); this is their typed view.
  const userEnv = (pod?.workerContainer?.env ?? []) as readonly unknown[] as readonly V1EnvVar[];
  const userRun = readUserDuration(userEnv, ENV_RUN_TIMEOUT);
  const userLogs = readUserDuration(userEnv, ENV_LOGS_TIMEOUT);
  const messageRun = checkMessageSeconds('timeouts.runSeconds of the schedule message', message.runSeconds);
  const messageLogs = checkMessageSeconds('timeouts.logsSeconds of the schedule message', message.logsSeconds);

  let poolRun: Limit | undefined;
  if (userRun.kind === 'value') poolRun = { seconds: userRun.seconds, text: userRun.text };
  else if (userRun.kind === 'absent' && deadline !== undefined) poolRun = { seconds: runTimeoutForDeadline(deadline) };

  const run = earliest(poolRun, messageRun === undefined ? undefined : { seconds: messageRun });
  // A pool deadline stands as written unless the message shortened the run below the pool's own run timeout.
  const activeDeadlineSeconds =
    run === undefined || (deadline !== undefined && run === poolRun)
      ? deadline
      : minDefined(deadline, deadlineForRunTimeout(run.seconds));

  if (userRun.kind === 'value' && deadline !== undefined && deadline <= userRun.seconds) {
    warnings.push(
      `spec.pod.activeDeadlineSeconds (${deadline}) is not longer than ${ENV_RUN_TIMEOUT} (${userRun.text}): ` +
        `the Pod is killed before the launcher can stop the run gracefully; ` +
        `leave one of them unset to have the other derived with a ${DEADLINE_MARGIN_SECONDS}s margin`,
    );
  }
  if (userRun.kind === 'opaque') {
    warnings.push(
      `${ENV_RUN_TIMEOUT} in spec.pod.workerContainer.env comes from valueFrom, which the controller cannot read: ` +
        `it is passed through unchanged and the Pod deadline does not take it into account`,
    );
  }
  if (userLogs.kind === 'opaque') {
    warnings.push(
      `${ENV_LOGS_TIMEOUT} in spec.pod.workerContainer.env comes from valueFrom, which the controller cannot read: ` +
        `it is passed through unchanged and the schedule message's log timeout is ignored`,
    );
  }

  const logs =
    userLogs.kind === 'opaque'
      ? undefined
      : earliest(
          userLogs.kind === 'value' ? { seconds: userLogs.seconds, text: userLogs.text } : undefined,
          messageLogs === undefined ? undefined : { seconds: messageLogs },
        );

  const env: V1EnvVar[] = [];
  if (run !== undefined && userRun.kind !== 'opaque') env.push({ name: ENV_RUN_TIMEOUT, value: asEnvValue(run) });
  if (logs !== undefined) env.push({ name: ENV_LOGS_TIMEOUT, value: asEnvValue(logs) });

  const out: {
    activeDeadlineSeconds?: number;
    runTimeoutSeconds?: number;
    logsTimeoutSeconds?: number;
    env: V1EnvVar[];
    warnings: string[];
  } = { env, warnings };
  if (activeDeadlineSeconds !== undefined) out.activeDeadlineSeconds = activeDeadlineSeconds;
  if (run !== undefined && userRun.kind !== 'opaque') out.runTimeoutSeconds = run.seconds;
  if (logs !== undefined) out.logsTimeoutSeconds = logs.seconds;
  return out;
}
