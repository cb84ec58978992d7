/**
 * How a run's script travels (issue 16), in its pure parts: the schedule's
 * `script` field, the backend's check of a submitted script, the run Secret
 * and the run Pod's `run-script` volume, and the log limit flag.
 */
import { describe, expect, test } from 'vitest';
import type { WorkerPoolSpec } from '../../src/api/types.js';
import { checkScript } from '../../src/backend/service.js';
import { truncationMarker } from '../../src/backend/run-files.js';
import { parseByteSize } from '../../src/backend/sizes.js';
import { buildRunPod, ENV_SCRIPT_SHA256, NameConflictError, runSecretName, VOLUME_RUN_SCRIPT, type RunPodInput } from '../../src/controller/runs/run-pod.js';
import { buildRunSecret } from '../../src/controller/runs/run-secret.js';
import { checkMessage, MAX_SCRIPT_BYTES, type ScheduleMessage } from '../../src/protocol/messages.js';
import { MESSAGE_VERSION } from '../../src/protocol/version.js';

const RUN_ID = '01HZX3ABCDEFGHJKMNPQRSTVWX';
const WORKER_ID = '01hzx0workerid0000000000aa';
const SHA = 'a'.repeat(64);

function schedule(over: Partial<ScheduleMessage> = {}): ScheduleMessage {
  return { type: 'schedule', version: MESSAGE_VERSION, runId: RUN_ID, runnerImage: 'localhost/kwc-runner:1', launcherImage: 'localhost/kwc-launcher:1', env: {}, timeouts: {}, ...over };
}

function input(over: Partial<ScheduleMessage> = {}, pod: Record<string, unknown> = {}): RunPodInput {
  return {
    pool: { name: 'pool-a', namespace: 'runs', uid: 'pool-uid', poolId: '01POOLID', spec: { poolSize: 1, pod } as WorkerPoolSpec },
    worker: { name: `pool-a-${WORKER_ID}`, uid: 'worker-uid', workerId: WORKER_ID },
    schedule: schedule(over),
  };
}

describe("the schedule's script field", () => {
  const check = (script: unknown): string => {
    const r = checkMessage<ScheduleMessage>({ ...schedule(), script }, ['schedule']);
    return r.ok ? `ok ${JSON.stringify(r.message.script)}` : r.reason;
  };
  test.each([
    [{ sha256: SHA, bytes: 1 }, `ok ${JSON.stringify({ sha256: SHA, bytes: 1 })}`],
    [{ sha256: SHA, bytes: MAX_SCRIPT_BYTES }, `ok ${JSON.stringify({ sha256: SHA, bytes: MAX_SCRIPT_BYTES })}`],
    ['echo hi', 'field "script" must be an object'],
    [{ sha256: SHA.toUpperCase(), bytes: 1 }, 'field "script.sha256" must be a lowercase hex SHA-256'],
    [{ sha256: SHA.slice(1), bytes: 1 }, 'field "script.sha256" must be a lowercase hex SHA-256'],
    [{ sha256: SHA }, 'field "script.bytes" is missing'],
    [{ sha256: SHA, bytes: 0 }, 'script.bytes'],
    [{ sha256: SHA, bytes: MAX_SCRIPT_BYTES + 1 }, 'script.bytes'],
  ])('%j -> %s', (script, expected) => {
    expect(check(script)).toContain(expected);
  });

  test('absent: a run without a script', () => {
    const r = checkMessage<ScheduleMessage>(schedule(), ['schedule']);
    expect(r.ok && r.message.script).toBeUndefined();
  });
});

describe('a submitted script', () => {
  test.each([
    [42, 'field "script" must be a string of shell text, got number'],
    [null, 'field "script" must be a string of shell text, got null'],
    [['echo'], 'field "script" must be a string of shell text, got array'],
    [' \n\t', 'field "script" must not be empty'],
    ['echo a\u0000b', 'field "script" contains a NUL character at position 6'],
    ['echo \udc00', 'field "script" is not valid Unicode text'],
    ['x'.repeat(MAX_SCRIPT_BYTES + 1), `field "script" is ${MAX_SCRIPT_BYTES + 1} bytes, more than ${MAX_SCRIPT_BYTES} (256 KiB)`],
    // Counted in UTF-8 bytes, not characters.
    ['é'.repeat(MAX_SCRIPT_BYTES / 2 + 1), `field "script" is ${MAX_SCRIPT_BYTES + 2} bytes`],
  ])('%#: refused, naming the field: %s', (script, message) => {
    expect(() => checkScript(script)).toThrow(message);
  });

  test('a good one is its UTF-8 bytes, up to 256 KiB', () => {
    expect(checkScript('echo "héllo"\n').toString('utf8')).toBe('echo "héllo"\n');
    expect(checkScript('x'.repeat(MAX_SCRIPT_BYTES)).length).toBe(MAX_SCRIPT_BYTES);
  });
});

describe('the run Pod of a run with a script', () => {
  test('mounts the run Secret read-only into init alone, and tells init the SHA-256 to check', () => {
    const pod = buildRunPod(input({ script: { sha256: SHA, bytes: 10 } }));
    expect(pod.spec?.volumes?.find((v) => v.name === VOLUME_RUN_SCRIPT)).toEqual({
      name: VOLUME_RUN_SCRIPT,
      secret: { secretName: runSecretName(RUN_ID), items: [{ key: 'script', path: 'script' }], defaultMode: 0o444 },
    });
    const init = pod.spec?.initContainers?.find((c) => c.name === 'init');
    expect(init?.volumeMounts).toContainEqual({ name: VOLUME_RUN_SCRIPT, mountPath: '/opt/spacelift/run', readOnly: true });
    expect(init?.env).toContainEqual({ name: ENV_SCRIPT_SHA256, value: SHA });
    for (const c of [...(pod.spec?.initContainers ?? []).filter((x) => x.name !== 'init'), ...(pod.spec?.containers ?? [])]) {
      expect(c.volumeMounts?.map((m) => m.name) ?? [], c.name).not.toContain(VOLUME_RUN_SCRIPT);
      expect(c.env?.map((e) => e.name) ?? [], c.name).not.toContain(ENV_SCRIPT_SHA256);
    }
  });

  test('a run without one has neither the volume nor the variable', () => {
    const pod = buildRunPod(input());
    expect(pod.spec?.volumes?.map((v) => v.name)).not.toContain(VOLUME_RUN_SCRIPT);
    expect(JSON.stringify(pod)).not.toContain(ENV_SCRIPT_SHA256);
  });

  test("a pool volume named like the script's is refused, naming the field", () => {
    expect(() => buildRunPod(input({}, { volumes: [{ name: VOLUME_RUN_SCRIPT, emptyDir: {} }] }))).toThrow(NameConflictError);
  });
});

describe('the run Secret', () => {
  const secret = buildRunSecret({
    namespace: 'runs',
    runId: RUN_ID,
    poolId: '01POOLID',
    worker: { name: `pool-a-${WORKER_ID}`, uid: 'worker-uid', workerId: WORKER_ID },
    pod: { name: 'p', uid: 'pod-uid' },
    script: Buffer.from('echo hi\n'),
  });
  test('is named like the run Pod, immutable, and holds the script', () => {
    expect(secret.metadata?.name).toBe(`${RUN_ID.toLowerCase()}-run-1`);
    expect(secret.metadata?.namespace).toBe('runs');
    expect(secret.immutable).toBe(true);
    expect(Buffer.from(secret.data?.script ?? '', 'base64').toString('utf8')).toBe('echo hi\n');
  });
  test('is owned by the Worker (controller) and the Pod, so it goes with either', () => {
    expect(secret.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Worker', name: `pool-a-${WORKER_ID}`, uid: 'worker-uid', controller: true }),
      { apiVersion: 'v1', kind: 'Pod', name: 'p', uid: 'pod-uid' },
    ]);
  });
  test('carries the run, worker and pool labels', () => {
    expect(secret.metadata?.labels).toMatchObject({ 'workers.spacelift.io/run-id': RUN_ID, 'workers.spacelift.io/worker': WORKER_ID, 'workers.spacelift.io/workerpool': '01POOLID' });
  });
});

describe('the log limit', () => {
  test.each([
    ['10Mi', 10 * 1024 * 1024],
    ['512Ki', 512 * 1024],
    ['1Gi', 1024 ** 3],
    ['1000', 1000],
  ])('--max-log-bytes %s = %d', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });
  test.each(['0', '-1', '10MB', 'ten', '1.5Mi', ''])('--max-log-bytes %j is refused, naming the value', (text) => {
    expect(() => parseByteSize(text)).toThrow(`got ${JSON.stringify(text)}`);
  });
  test('the marker starts on a line of its own', () => {
    expect(truncationMarker(100, 0x0a).toString()).toMatch(/^\[log truncated: this run printed more than 100 bytes/);
    expect(truncationMarker(100, 0x41).toString()).toMatch(/^\n\[log truncated/);
  });
});
