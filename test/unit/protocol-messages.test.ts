import { describe, expect, test } from 'vitest';
import {
  checkMessage,
  encodeMessage,
  MAX_ENV_VARS,
  MAX_MESSAGE_BYTES,
  MAX_SCRIPT_BYTES,
  MAX_TIMEOUT_SECONDS,
  parseMessage,
  TO_BACKEND_TYPES,
  TO_WORKER_TYPES,
  type ProtocolMessage,
} from '../../src/protocol/messages.js';
import { parseWorkerTopic, readonlyTopic, writeonlyTopic } from '../../src/protocol/topics.js';

const schedule: ProtocolMessage = {
  type: 'schedule',
  version: 1,
  runId: '01JRUN00000000000000000000',
  runnerImage: 'public.ecr.aws/spacelift/runner-terraform:latest',
  launcherImage: 'public.ecr.aws/spacelift/launcher:v1',
  env: { TF_LOG: 'debug', EMPTY: '' },
  timeouts: { runSeconds: 4200, logsSeconds: 600 },
};

function reason(payload: string, allowed?: Parameters<typeof parseMessage>[1]): string {
  const r = parseMessage(payload, allowed);
  if (r.ok) throw new Error('accepted');
  return r.reason;
}

function accepted(payload: string): ProtocolMessage {
  const r = parseMessage(payload);
  if (!r.ok) throw new Error(`refused: ${r.reason}`);
  return r.message;
}

const SHA = '0123456789abcdef'.repeat(4);

describe('parseMessage', () => {
  test('accepts every message type and round-trips it', () => {
    const all: ProtocolMessage[] = [
      schedule,
      { type: 'stop', version: 1, runId: 'r-1' },
      { type: 'state', version: 1, state: 'busy', runId: 'r-1' },
      { type: 'state', version: 1, state: 'idle' },
      { type: 'run-status', version: 1, runId: 'r-1', status: 'failed', reason: 'ImagePullBackOff', exitCode: 1 },
    ];
    for (const m of all) expect(parseMessage(encodeMessage(m))).toEqual({ ok: true, message: m });
  });

  test('ignores unknown extra fields and fills optional ones', () => {
    const r = parseMessage(JSON.stringify({ type: 'schedule', version: 1, runId: 'a', runnerImage: 'r', launcherImage: 'l', env: {}, extra: true }));
    expect(r).toEqual({ ok: true, message: { type: 'schedule', version: 1, runId: 'a', runnerImage: 'r', launcherImage: 'l', env: {}, timeouts: {} } });
  });

  test('rejects malformed payloads with a reason naming the problem', () => {
    expect(reason('{"type":')).toMatch(/^malformed JSON: /);
    expect(reason('[1,2]')).toBe('message must be a JSON object, got array');
    expect(reason('{"version":1}')).toBe('field "type" must be a string, got undefined');
    expect(reason('{"type":"teleport","version":1}')).toBe('unknown message type "teleport"');
    expect(reason('{"type":"stop","version":2,"runId":"a"}')).toBe('unsupported version 2 of "stop" (this build speaks message version 1)');
    expect(reason('{"type":"stop","runId":"a"}')).toBe('unsupported version undefined of "stop" (this build speaks message version 1)');
    expect(reason('{"type":"stop","version":1}')).toBe('invalid "stop" message: field "runId" is missing');
    expect(reason('{"type":"stop","version":1,"runId":5}')).toBe('invalid "stop" message: field "runId" must be a string, got number 5');
    expect(reason('{"type":"stop","version":1,"runId":"a/b"}')).toBe('invalid "stop" message: field "runId" has an invalid value "a/b"');
    expect(reason('{"type":"state","version":1,"state":"sleepy"}')).toBe('invalid "state" message: field "state" must be one of idle, busy, draining, offline, got "sleepy"');
    expect(reason('{"type":"run-status","version":1,"runId":"a","status":"running","exitCode":1.5}')).toBe('invalid "run-status" message: field "exitCode" must be an integer, got number 1.5');
    expect(reason(JSON.stringify({ ...schedule, env: { A: 1 } }))).toBe('invalid "schedule" message: field "env.A" must be a string, got number 1');
    expect(reason(JSON.stringify({ ...schedule, env: ['A'] }))).toBe('invalid "schedule" message: field "env" must be an object of strings, got array');
    expect(reason(JSON.stringify({ ...schedule, timeouts: { runSeconds: 0 } }))).toBe('invalid "schedule" message: field "timeouts.runSeconds" must be between 1 and 604800, got 0');
    expect(reason(JSON.stringify({ ...schedule, runnerImage: 'has space' }))).toBe('invalid "schedule" message: field "runnerImage" has an invalid value "has space"');
    expect(reason('x'.repeat(300 * 1024))).toMatch(/^message is 307200 bytes, more than 262144$/);
  });

  test('rejects messages travelling the wrong way', () => {
    expect(reason(encodeMessage(schedule).toString(), TO_BACKEND_TYPES)).toBe('message type "schedule" is not accepted in this direction');
    expect(reason('{"type":"state","version":1,"state":"idle"}', TO_WORKER_TYPES)).toBe('message type "state" is not accepted in this direction');
  });

  test('a payload that is not a JSON object is refused, naming what it is', () => {
    expect(reason('null')).toBe('message must be a JSON object, got null');
    expect(reason('"hello"')).toBe('message must be a JSON object, got string "hello"');
    expect(reason('5')).toBe('message must be a JSON object, got number 5');
    expect(reason('true')).toBe('message must be a JSON object, got boolean true');
    expect(reason(JSON.stringify('x'.repeat(100)))).toBe(`message must be a JSON object, got string "${'x'.repeat(40)}"`);
  });

  test('an unknown type is quoted up to 64 characters', () => {
    expect(reason(JSON.stringify({ type: 'y'.repeat(100), version: 1 }))).toBe(`unknown message type "${'y'.repeat(64)}"`);
  });

  test('a payload of exactly the size limit is read, one byte more is refused', () => {
    const base = JSON.stringify({ type: 'stop', version: 1, runId: 'r-1', pad: '' });
    const full = JSON.stringify({ type: 'stop', version: 1, runId: 'r-1', pad: 'x'.repeat(MAX_MESSAGE_BYTES - base.length) });
    expect(Buffer.byteLength(full)).toBe(MAX_MESSAGE_BYTES);
    expect(accepted(full)).toStrictEqual({ type: 'stop', version: 1, runId: 'r-1' });
    expect(reason(`${full} `)).toBe(`message is ${MAX_MESSAGE_BYTES + 1} bytes, more than ${MAX_MESSAGE_BYTES}`);
  });

  test('string fields: null, empty, too long and invalid values are refused with the field named', () => {
    expect(reason('{"type":"stop","version":1,"runId":null}')).toBe('invalid "stop" message: field "runId" must be a string, got null');
    expect(reason('{"type":"stop","version":1,"runId":true}')).toBe('invalid "stop" message: field "runId" must be a string, got boolean true');
    expect(reason('{"type":"stop","version":1,"runId":""}')).toBe('invalid "stop" message: field "runId" must not be empty');
    const longBad = `a/${'b'.repeat(100)}`;
    expect(reason(JSON.stringify({ type: 'stop', version: 1, runId: longBad }))).toBe(`invalid "stop" message: field "runId" has an invalid value "${longBad.slice(0, 80)}"`);
    expect(reason(JSON.stringify({ type: 'state', version: 1, state: 'i'.repeat(65) }))).toBe('invalid "state" message: field "state" is longer than 64 characters');
    expect(reason(JSON.stringify({ type: 'run-status', version: 1, runId: 'r-1', status: 's'.repeat(65) }))).toBe('invalid "run-status" message: field "status" is longer than 64 characters');
  });

  test('every run id is checked against the run id pattern', () => {
    expect(reason(JSON.stringify({ ...schedule, runId: 'a/b' }))).toBe('invalid "schedule" message: field "runId" has an invalid value "a/b"');
    expect(reason('{"type":"run-status","version":1,"runId":"a/b","status":"running"}')).toBe('invalid "run-status" message: field "runId" has an invalid value "a/b"');
    expect(reason('{"type":"state","version":1,"state":"busy","runId":"a/b"}')).toBe('invalid "state" message: field "runId" has an invalid value "a/b"');
    expect(reason('{"type":"reject","version":1,"runId":"a/b","reason":"no"}')).toBe('invalid "reject" message: field "runId" has an invalid value "a/b"');
  });

  test('a schedule checks its launcher image as it does its runner image', () => {
    expect(reason(JSON.stringify({ ...schedule, launcherImage: 'has space' }))).toBe('invalid "schedule" message: field "launcherImage" has an invalid value "has space"');
    expect(reason(JSON.stringify({ ...schedule, launcherImage: 'l'.repeat(1025) }))).toBe('invalid "schedule" message: field "launcherImage" is longer than 1024 characters');
    expect(accepted(JSON.stringify({ ...schedule, launcherImage: 'l'.repeat(1024) }))).toMatchObject({ launcherImage: 'l'.repeat(1024) });
  });

  test('a reason may have 4096 characters, not more', () => {
    const runStatus = { type: 'run-status', version: 1, runId: 'r-1', status: 'failed' };
    expect(accepted(JSON.stringify({ ...runStatus, reason: 'r'.repeat(4096) }))).toStrictEqual({ ...runStatus, reason: 'r'.repeat(4096) });
    expect(reason(JSON.stringify({ ...runStatus, reason: 'r'.repeat(4097) }))).toBe('invalid "run-status" message: field "reason" is longer than 4096 characters');
  });

  test('a reject carries the run id and the reason, both required', () => {
    const reject: ProtocolMessage = { type: 'reject', version: 1, runId: 'r-1', reason: 'field "env" has more than 1024 variables' };
    expect(parseMessage(encodeMessage(reject), TO_BACKEND_TYPES)).toStrictEqual({ ok: true, message: reject });
    expect(reason('{"type":"reject","version":1,"runId":"r-1"}')).toBe('invalid "reject" message: field "reason" is missing');
    expect(reason('{"type":"reject","version":1,"reason":"no"}')).toBe('invalid "reject" message: field "runId" is missing');
    expect(reason(JSON.stringify({ ...reject, reason: 'r'.repeat(4097) }))).toBe('invalid "reject" message: field "reason" is longer than 4096 characters');
    expect(accepted(JSON.stringify({ ...reject, reason: 'r'.repeat(4096) }))).toStrictEqual({ ...reject, reason: 'r'.repeat(4096) });
  });

  test('optional fields not sent are absent from the message, not present as undefined', () => {
    // Absent, so that `{ ...defaults, ...message.timeouts }` keeps the defaults.
    expect(accepted('{"type":"run-status","version":1,"runId":"r-1","status":"running"}')).toStrictEqual({ type: 'run-status', version: 1, runId: 'r-1', status: 'running' });
    expect(accepted('{"type":"state","version":1,"state":"idle"}')).toStrictEqual({ type: 'state', version: 1, state: 'idle' });
    const bare = { type: 'schedule', version: 1, runId: 'a', runnerImage: 'r', launcherImage: 'l', env: {} };
    expect(accepted(JSON.stringify({ ...bare, timeouts: { runSeconds: 60 } }))).toStrictEqual({ ...bare, timeouts: { runSeconds: 60 } });
    expect(accepted(JSON.stringify({ ...bare, timeouts: { logsSeconds: 60 } }))).toStrictEqual({ ...bare, timeouts: { logsSeconds: 60 } });
    const defaults = { runSeconds: 3600, logsSeconds: 600 };
    const m = accepted(JSON.stringify({ ...bare, timeouts: { runSeconds: 60 } }));
    expect(m.type === 'schedule' && { ...defaults, ...m.timeouts }).toStrictEqual({ runSeconds: 60, logsSeconds: 600 });
  });

  test('integer fields are accepted up to their bounds and refused beyond them, with the path named', () => {
    const withTimeouts = (timeouts: unknown): string => JSON.stringify({ ...schedule, timeouts });
    expect(accepted(withTimeouts({ runSeconds: 1, logsSeconds: 1 }))).toMatchObject({ timeouts: { runSeconds: 1, logsSeconds: 1 } });
    expect(accepted(withTimeouts({ runSeconds: MAX_TIMEOUT_SECONDS, logsSeconds: MAX_TIMEOUT_SECONDS }))).toMatchObject({ timeouts: { runSeconds: 604800, logsSeconds: 604800 } });
    expect(reason(withTimeouts({ runSeconds: MAX_TIMEOUT_SECONDS + 1 }))).toBe('invalid "schedule" message: field "timeouts.runSeconds" must be between 1 and 604800, got 604801');
    expect(reason(withTimeouts({ logsSeconds: 0 }))).toBe('invalid "schedule" message: field "timeouts.logsSeconds" must be between 1 and 604800, got 0');
    expect(reason(withTimeouts({ logsSeconds: '60' }))).toBe('invalid "schedule" message: field "timeouts.logsSeconds" must be an integer, got string "60"');
    expect(reason(withTimeouts(5))).toBe('invalid "schedule" message: field "timeouts" must be an object, got number 5');
    const runStatus = { type: 'run-status', version: 1, runId: 'r-1', status: 'finished' };
    expect(accepted(JSON.stringify({ ...runStatus, exitCode: -2147483648 }))).toStrictEqual({ ...runStatus, exitCode: -2147483648 });
    expect(accepted(JSON.stringify({ ...runStatus, exitCode: 2147483647 }))).toStrictEqual({ ...runStatus, exitCode: 2147483647 });
    expect(reason(JSON.stringify({ ...runStatus, exitCode: 2147483648 }))).toBe('invalid "run-status" message: field "exitCode" must be between -2147483648 and 2147483647, got 2147483648');
  });

  test("a schedule's env: required, at most 1024 variables, each with a valid name", () => {
    const { env: _env, ...withoutEnv } = schedule;
    expect(reason(JSON.stringify(withoutEnv))).toBe('invalid "schedule" message: field "env" is missing');
    const vars = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, 'x']));
    expect(accepted(JSON.stringify({ ...schedule, env: vars(MAX_ENV_VARS) }))).toMatchObject({ env: vars(1024) });
    expect(reason(JSON.stringify({ ...schedule, env: vars(MAX_ENV_VARS + 1) }))).toBe('invalid "schedule" message: field "env" has more than 1024 variables');
    const suffix = ' (printable ASCII without spaces or "=", at most 256)';
    expect(reason(JSON.stringify({ ...schedule, env: { 'A=B': 'x' } }))).toBe(`invalid "schedule" message: field "env" has an invalid variable name "A=B"${suffix}`);
    expect(reason(JSON.stringify({ ...schedule, env: { ['N'.repeat(300)]: 'x' } }))).toBe(`invalid "schedule" message: field "env" has an invalid variable name "${'N'.repeat(80)}"${suffix}`);
  });

  test("a schedule's script reference round-trips and each defect is named", () => {
    const withScript: ProtocolMessage = { ...schedule, script: { sha256: SHA, bytes: 12 } };
    expect(parseMessage(encodeMessage(withScript))).toStrictEqual({ ok: true, message: withScript });
    expect(accepted(JSON.stringify({ ...schedule, script: { sha256: SHA, bytes: MAX_SCRIPT_BYTES } }))).toMatchObject({ script: { sha256: SHA, bytes: MAX_SCRIPT_BYTES } });
    expect(accepted(encodeMessage(schedule).toString())).not.toHaveProperty('script');
    const bad = (script: unknown): string => reason(JSON.stringify({ ...schedule, script }));
    expect(bad('echo hi')).toBe('invalid "schedule" message: field "script" must be an object, got string "echo hi"');
    expect(bad({ bytes: 12 })).toBe('invalid "schedule" message: field "script.sha256" must be a lowercase hex SHA-256');
    expect(bad({ sha256: SHA.toUpperCase(), bytes: 12 })).toBe('invalid "schedule" message: field "script.sha256" must be a lowercase hex SHA-256');
    expect(bad({ sha256: SHA })).toBe('invalid "schedule" message: field "script.bytes" is missing');
    expect(bad({ sha256: SHA, bytes: 0 })).toBe('invalid "schedule" message: field "script.bytes" must be between 1 and 262144, got 0');
    expect(bad({ sha256: SHA, bytes: MAX_SCRIPT_BYTES + 1 })).toBe('invalid "schedule" message: field "script.bytes" must be between 1 and 262144, got 262145');
  });
});

describe('checkMessage', () => {
  test('accepts an already parsed message of either direction by default', () => {
    expect(checkMessage(schedule)).toStrictEqual({ ok: true, message: schedule });
    expect(checkMessage({ type: 'state', version: 1, state: 'draining' })).toStrictEqual({ ok: true, message: { type: 'state', version: 1, state: 'draining' } });
  });

  test('has no size limit of its own, and refuses what parseMessage refuses', () => {
    const big = { ...schedule, env: { BIG: 'x'.repeat(MAX_MESSAGE_BYTES) } };
    expect(checkMessage(big)).toStrictEqual({ ok: true, message: big });
    expect(checkMessage({ ...schedule, runId: '' })).toStrictEqual({ ok: false, reason: 'invalid "schedule" message: field "runId" must not be empty' });
  });
});

describe('topics', () => {
  test('builds and parses worker topics', () => {
    expect(readonlyTopic('P1', 'W1')).toBe('spacelift/readonly/P1/W1');
    expect(writeonlyTopic('P1', 'W1', 'acme')).toBe('acme/writeonly/P1/W1');
    expect(parseWorkerTopic('spacelift/writeonly/P1/W1')).toEqual({ direction: 'writeonly', poolId: 'P1', workerId: 'W1' });
    expect(parseWorkerTopic('spacelift/writeonly/+/W1')).toBeUndefined();
    expect(parseWorkerTopic('spacelift/writeonly/P1/W1/x')).toBeUndefined();
    expect(parseWorkerTopic('other/writeonly/P1/W1')).toBeUndefined();
    expect(parseWorkerTopic('spacelift/sideways/P1/W1')).toBeUndefined();
  });
});
