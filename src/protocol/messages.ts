import { JsonSyntaxError, parseJson } from './json.js';
import { MESSAGE_VERSION } from './version.js';

/**
 * MQTT message payloads (UTF-8 JSON). Every message carries `type` and
 * `version`; receivers validate with {@link parseMessage} and drop (count, log)
 * anything that fails. Unknown extra fields are ignored so that a minor,
 * additive change does not need a new version. The message version is not
 * the protocol version: protocol version 2 left messages as they were
 * (see {@link MESSAGE_VERSION}).
 */

/** Run ids become part of Pod names, so they are restricted to DNS-label-safe text. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Largest payload accepted; a schedule with a large environment stays far below it. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * Largest run script, in bytes of UTF-8. A script never travels in a message
 * (it could not fit beside the rest of a schedule): the schedule names it by
 * {@link ScriptRef}, and the worker fetches it from the backend's worker API.
 */
export const MAX_SCRIPT_BYTES = 256 * 1024;

/** What a schedule says of its run's script: enough to fetch it and to check that what arrived is it. */
export interface ScriptRef {
  /** Lowercase hex SHA-256 of the script's bytes. */
  sha256: string;
  /** Its length in bytes, 1..{@link MAX_SCRIPT_BYTES}. */
  bytes: number;
}

/** backend -> worker: run this. Redelivered until the worker answers `accepted`; apply idempotently by `runId`. */
export interface ScheduleMessage {
  type: 'schedule';
  version: typeof MESSAGE_VERSION;
  runId: string;
  /** Image of the `worker` container. */
  runnerImage: string;
  /** Image of the `init` and `launcher-grpc` containers (the pool may pin its own). */
  launcherImage: string;
  /** Environment for the run's `worker` container. */
  env: Record<string, string>;
  timeouts: {
    /** Whole-run limit: Pod `activeDeadlineSeconds` and `SPACELIFT_LAUNCHER_RUN_TIMEOUT`. */
    runSeconds?: number;
    /** Log-silence limit: `SPACELIFT_LAUNCHER_LOGS_TIMEOUT`. */
    logsSeconds?: number;
  };
  /** The run's script, fetched from the worker API (`GET .../runs/<runId>/script`); absent: the run has none. */
  script?: ScriptRef;
}

/** backend -> worker: stop this run (no-op if unknown or already over). */
export interface StopMessage {
  type: 'stop';
  version: typeof MESSAGE_VERSION;
  runId: string;
}

/** What a worker reports about itself. `offline` is only ever sent as the MQTT will. */
export type WorkerState = 'idle' | 'busy' | 'draining' | 'offline';
export const WORKER_STATES: readonly WorkerState[] = ['idle', 'busy', 'draining', 'offline'];

/** worker -> backend: current state, sent on every connect and as a periodic heartbeat. */
export interface StateMessage {
  type: 'state';
  version: typeof MESSAGE_VERSION;
  state: WorkerState;
  /** The run in progress, when `busy`. */
  runId?: string;
}

export type RunStatus = 'accepted' | 'pod-created' | 'running' | 'finished' | 'failed' | 'stopped';
export const RUN_STATUSES: readonly RunStatus[] = ['accepted', 'pod-created', 'running', 'finished', 'failed', 'stopped'];

/** worker -> backend: progress of one run. */
export interface RunStatusMessage {
  type: 'run-status';
  version: typeof MESSAGE_VERSION;
  runId: string;
  status: RunStatus;
  /** Human-readable cause; expected with `failed` and `stopped`. */
  reason?: string;
  /** Exit code of the `worker` container, when known. */
  exitCode?: number;
}

/**
 * worker -> backend: the worker cannot act on a `schedule` as sent (it fails
 * the worker's validation, e.g. a field beyond the worker's limits). The
 * backend fails the run after a few of these instead of re-sending it forever.
 */
export interface RejectMessage {
  type: 'reject';
  version: typeof MESSAGE_VERSION;
  runId: string;
  /** The worker's validation error. */
  reason: string;
}

export type ToWorkerMessage = ScheduleMessage | StopMessage;
export type ToBackendMessage = StateMessage | RunStatusMessage | RejectMessage;
export type ProtocolMessage = ToWorkerMessage | ToBackendMessage;
export type MessageType = ProtocolMessage['type'];

/** Message types each direction may carry. */
export const TO_WORKER_TYPES: readonly MessageType[] = ['schedule', 'stop'];
export const TO_BACKEND_TYPES: readonly MessageType[] = ['state', 'run-status', 'reject'];

export type ParseResult<T> = { ok: true; message: T } | { ok: false; reason: string };

/** Serializes a message for publishing. */
export function encodeMessage(message: ProtocolMessage): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

class Invalid extends Error {}

function invalid(reason: string): never {
  throw new Invalid(reason);
}

type Obj = Record<string, unknown>;

function str(o: Obj, field: string, opts: { optional?: boolean; max?: number; pattern?: RegExp } = {}): string | undefined {
  const v = o[field];
  if (v === undefined) {
    if (opts.optional) return undefined;
    invalid(`field "${field}" is missing`);
  }
  if (typeof v !== 'string') invalid(`field "${field}" must be a string, got ${describe(v)}`);
  if (v.length === 0) invalid(`field "${field}" must not be empty`);
  if (opts.max !== undefined && v.length > opts.max) invalid(`field "${field}" is longer than ${opts.max} characters`);
  if (opts.pattern && !opts.pattern.test(v)) invalid(`field "${field}" has an invalid value ${JSON.stringify(v.slice(0, 80))}`);
  return v;
}

function reqStr(o: Obj, field: string, opts: { max?: number; pattern?: RegExp } = {}): string {
  return str(o, field, opts) as string;
}

function oneOf<T extends string>(o: Obj, field: string, allowed: readonly T[]): T {
  const v = reqStr(o, field, { max: 64 });
  if (!(allowed as readonly string[]).includes(v)) {
    invalid(`field "${field}" must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function optInt(o: Obj, field: string, min: number, max: number, path = field): number | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) invalid(`field "${path}" must be an integer, got ${describe(v)}`);
  if (v < min || v > max) invalid(`field "${path}" must be between ${min} and ${max}, got ${v}`);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.slice(0, 40))}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v;
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const IMAGE = /^[^\s]+$/;
/** Printable ASCII without spaces and `=`: what Kubernetes accepts as a variable name, and nothing that could break a line. */
export const ENV_NAME_PATTERN = /^[!-<>-~]{1,256}$/;
/** Longest runner or launcher image reference. */
export const MAX_IMAGE_LENGTH = 1024;
/** Most variables in a schedule's `env`. */
export const MAX_ENV_VARS = 1024;
/** Longest timeout a schedule may carry (7 days). */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

function parseEnv(o: Obj): Record<string, string> {
  const v = o['env'];
  if (v === undefined) invalid('field "env" is missing');
  if (!isObject(v)) invalid(`field "env" must be an object of strings, got ${describe(v)}`);
  const env: Record<string, string> = {};
  if (Object.keys(v).length > MAX_ENV_VARS) invalid(`field "env" has more than ${MAX_ENV_VARS} variables`);
  for (const [k, val] of Object.entries(v)) {
    if (!ENV_NAME_PATTERN.test(k)) invalid(`field "env" has an invalid variable name ${JSON.stringify(k.slice(0, 80))} (printable ASCII without spaces or "=", at most 256)`);
    if (typeof val !== 'string') invalid(`field "env.${k}" must be a string, got ${describe(val)}`);
    env[k] = val;
  }
  return env;
}

function parseTimeouts(o: Obj): ScheduleMessage['timeouts'] {
  const v = o['timeouts'];
  if (v === undefined) return {};
  if (!isObject(v)) invalid(`field "timeouts" must be an object, got ${describe(v)}`);
  const out: ScheduleMessage['timeouts'] = {};
  const run = optInt(v, 'runSeconds', 1, MAX_TIMEOUT_SECONDS, 'timeouts.runSeconds');
  const logs = optInt(v, 'logsSeconds', 1, MAX_TIMEOUT_SECONDS, 'timeouts.logsSeconds');
  if (run !== undefined) out.runSeconds = run;
  if (logs !== undefined) out.logsSeconds = logs;
  return out;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function parseScript(o: Obj): ScriptRef | undefined {
  const v = o['script'];
  if (v === undefined) return undefined;
  if (!isObject(v)) invalid(`field "script" must be an object, got ${describe(v)}`);
  const sha256 = v['sha256'];
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) invalid('field "script.sha256" must be a lowercase hex SHA-256');
  const bytes = optInt(v, 'bytes', 1, MAX_SCRIPT_BYTES, 'script.bytes');
  if (bytes === undefined) invalid('field "script.bytes" is missing');
  return { sha256, bytes };
}

function parseBody(type: MessageType, o: Obj): ProtocolMessage {
  const version = MESSAGE_VERSION;
  switch (type) {
    case 'schedule': {
      const msg: ScheduleMessage = {
        type,
        version,
        runId: reqStr(o, 'runId', { pattern: RUN_ID_PATTERN }),
        runnerImage: reqStr(o, 'runnerImage', { max: MAX_IMAGE_LENGTH, pattern: IMAGE }),
        launcherImage: reqStr(o, 'launcherImage', { max: MAX_IMAGE_LENGTH, pattern: IMAGE }),
        env: parseEnv(o),
        timeouts: parseTimeouts(o),
      };
      const script = parseScript(o);
      if (script !== undefined) msg.script = script;
      return msg;
    }
    case 'stop':
      return { type, version, runId: reqStr(o, 'runId', { pattern: RUN_ID_PATTERN }) };
    case 'state': {
      const msg: StateMessage = { type, version, state: oneOf(o, 'state', WORKER_STATES) };
      const runId = str(o, 'runId', { optional: true, pattern: RUN_ID_PATTERN });
      if (runId !== undefined) msg.runId = runId;
      return msg;
    }
    case 'reject':
      return { type, version, runId: reqStr(o, 'runId', { pattern: RUN_ID_PATTERN }), reason: reqStr(o, 'reason', { max: 4096 }) };
    case 'run-status': {
      const msg: RunStatusMessage = {
        type,
        version,
        runId: reqStr(o, 'runId', { pattern: RUN_ID_PATTERN }),
        status: oneOf(o, 'status', RUN_STATUSES),
      };
      const reason = str(o, 'reason', { optional: true, max: 4096 });
      if (reason !== undefined) msg.reason = reason;
      const exitCode = optInt(o, 'exitCode', -2147483648, 2147483647);
      if (exitCode !== undefined) msg.exitCode = exitCode;
      return msg;
    }
  }
}

/**
 * Validates a received payload.
 *
 * @param allowed restricts the accepted types to one direction (e.g.
 *   {@link TO_WORKER_TYPES} on the worker side), so a message sent the wrong
 *   way is rejected like an unknown one.
 * @returns the typed message, or a reason such as `malformed JSON: ...`,
 *   `unknown message type "foo"`, `unsupported version 2 of "schedule"`,
 *   `field "runId" is missing`.
 */
export function parseMessage<T extends ProtocolMessage = ProtocolMessage>(
  payload: Uint8Array | string,
  allowed: readonly MessageType[] = [...TO_WORKER_TYPES, ...TO_BACKEND_TYPES],
): ParseResult<T> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > MAX_MESSAGE_BYTES) return { ok: false, reason: `message is ${size} bytes, more than ${MAX_MESSAGE_BYTES}` };
  let data: unknown;
  try {
    const text = typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
    data = parseJson(text);
  } catch (err) {
    // The position only: a payload may carry a run's environment.
    if (err instanceof JsonSyntaxError) return { ok: false, reason: `malformed JSON: ${err.message}` };
    throw err;
  }
  return checkMessage<T>(data, allowed);
}

/**
 * Validates a message already parsed from JSON: the checks of
 * {@link parseMessage} without the size limit. The backend runs its API input
 * through it, so that it never queues a run its workers would refuse.
 */
export function checkMessage<T extends ProtocolMessage = ProtocolMessage>(
  data: unknown,
  allowed: readonly MessageType[] = [...TO_WORKER_TYPES, ...TO_BACKEND_TYPES],
): ParseResult<T> {
  if (!isObject(data)) return { ok: false, reason: `message must be a JSON object, got ${describe(data)}` };
  const type = data['type'];
  if (typeof type !== 'string') return { ok: false, reason: `field "type" must be a string, got ${describe(type)}` };
  if (!(allowed as readonly string[]).includes(type)) {
    const known = (TO_WORKER_TYPES as readonly string[]).includes(type) || (TO_BACKEND_TYPES as readonly string[]).includes(type);
    return { ok: false, reason: known ? `message type "${type}" is not accepted in this direction` : `unknown message type ${JSON.stringify(type.slice(0, 64))}` };
  }
  const version = data['version'];
  if (version !== MESSAGE_VERSION) {
    return { ok: false, reason: `unsupported version ${JSON.stringify(version)} of "${type}" (this build speaks message version ${MESSAGE_VERSION})` };
  }
  try {
    return { ok: true, message: parseBody(type as MessageType, data) as T };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: `invalid "${type}" message: ${err.message}` };
    throw err;
  }
}
