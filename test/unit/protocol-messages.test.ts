import { describe, expect, test } from 'vitest';
import { encodeMessage, parseMessage, TO_BACKEND_TYPES, TO_WORKER_TYPES, type ProtocolMessage } from '../../src/protocol/messages.js';
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
