import { describe, expect, test } from 'vitest';
import type { WorkerPoolSpec } from '../../src/api/types.js';
import {
  DEADLINE_MARGIN_SECONDS,
  ENV_LOGS_TIMEOUT,
  ENV_RUN_TIMEOUT,
  InvalidTimeoutError,
  RunConfigError,
  deadlineForRunTimeout,
  formatSeconds,
  resolveRunTimeouts,
  runTimeoutForDeadline,
} from '../../src/controller/runs/run-timeouts.js';
import { parseDuration } from '../../src/runtime/duration.js';
import { errorOf } from '../support/error-of.js';

function spec(pod: Record<string, unknown> = {}): WorkerPoolSpec {
  return { pod } as WorkerPoolSpec;
}

function envOf(r: ReturnType<typeof resolveRunTimeouts>): Record<string, string | undefined> {
  return Object.fromEntries(r.env.map((e) => [e.name, e.value]));
}

describe('rules', () => {
  test('the margin is five minutes', () => {
    expect(DEADLINE_MARGIN_SECONDS).toBe(300);
  });
  test('deadline from run timeout adds the margin, rounding up', () => {
    expect(deadlineForRunTimeout(4200)).toBe(4500);
    expect(deadlineForRunTimeout(1.5)).toBe(302);
  });
  test('run timeout from deadline subtracts the margin but keeps at least half', () => {
    expect(runTimeoutForDeadline(4200)).toBe(3900);
    expect(runTimeoutForDeadline(400)).toBe(200);
    expect(runTimeoutForDeadline(1)).toBe(1);
  });
  test('formatted values are Go durations Go reads back', () => {
    expect(formatSeconds(4200)).toBe('1h10m0s');
    expect(parseDuration(formatSeconds(3900))).toBe(3900_000);
  });
});

describe('resolveRunTimeouts', () => {
  test('nothing set: no deadline, no variables', () => {
    const r = resolveRunTimeouts({} as WorkerPoolSpec, {});
    expect(r.activeDeadlineSeconds).toBeUndefined();
    expect(r.env).toEqual([]);
    expect(r.warnings).toEqual([]);
    // Absent, not present and undefined: "absent means no deadline".
    expect(r).toStrictEqual({ env: [], warnings: [] });
  });

  test('docs example: activeDeadlineSeconds 4200 alone derives a 65 minute run timeout', () => {
    const r = resolveRunTimeouts(spec({ activeDeadlineSeconds: 4200 }));
    expect(r.activeDeadlineSeconds).toBe(4200);
    expect(r.runTimeoutSeconds).toBe(3900);
    expect(envOf(r)).toEqual({ [ENV_RUN_TIMEOUT]: '1h5m0s' });
  });

  test('run timeout variable alone derives the deadline and keeps the text verbatim', () => {
    const r = resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '70m' }] } }));
    expect(r.activeDeadlineSeconds).toBe(4500);
    expect(r.runTimeoutSeconds).toBe(4200);
    expect(envOf(r)).toEqual({ [ENV_RUN_TIMEOUT]: '70m' });
  });

  test('both set by the pool: both used as written', () => {
    const r = resolveRunTimeouts(
      spec({ activeDeadlineSeconds: 5000, workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '70m' }] } }),
    );
    expect(r.activeDeadlineSeconds).toBe(5000);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('70m');
    expect(r.warnings).toEqual([]);
  });

  test('both set by the pool, a shorter message lowers both', () => {
    const r = resolveRunTimeouts(
      spec({ activeDeadlineSeconds: 5000, workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '70m' }] } }),
      { runSeconds: 600 },
    );
    expect(r.activeDeadlineSeconds).toBe(900);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('10m0s');
  });

  test('both set, deadline not longer than run timeout: used as written with a warning', () => {
    const r = resolveRunTimeouts(
      spec({ activeDeadlineSeconds: 4200, workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '70m' }] } }),
    );
    expect(r.activeDeadlineSeconds).toBe(4200);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('70m');
    expect(r.warnings).toEqual([
      `spec.pod.activeDeadlineSeconds (4200) is not longer than ${ENV_RUN_TIMEOUT} (70m): ` +
        'the Pod is killed before the launcher can stop the run gracefully; ' +
        'leave one of them unset to have the other derived with a 300s margin',
    ]);
  });

  test('a message limit equal to the pool\'s keeps the pool\'s text and deadline', () => {
    const r = resolveRunTimeouts(
      spec({
        activeDeadlineSeconds: 5000,
        workerContainer: {
          env: [
            { name: ENV_RUN_TIMEOUT, value: '70m' },
            { name: ENV_LOGS_TIMEOUT, value: '20m' },
          ],
        },
      }),
      { runSeconds: 4200, logsSeconds: 1200 },
    );
    expect(r.activeDeadlineSeconds).toBe(5000);
    expect(envOf(r)).toEqual({ [ENV_RUN_TIMEOUT]: '70m', [ENV_LOGS_TIMEOUT]: '20m' });
  });

  test('one second is the shortest deadline and timeout accepted', () => {
    const pool = resolveRunTimeouts(spec({ activeDeadlineSeconds: 1 }));
    expect(pool.activeDeadlineSeconds).toBe(1);
    expect(pool.runTimeoutSeconds).toBe(1);
    const message = resolveRunTimeouts(spec(), { runSeconds: 1, logsSeconds: 1 });
    expect(message.runTimeoutSeconds).toBe(1);
    expect(message.logsTimeoutSeconds).toBe(1);
    expect(message.activeDeadlineSeconds).toBe(301);
    expect(envOf(message)).toEqual({ [ENV_RUN_TIMEOUT]: '1s', [ENV_LOGS_TIMEOUT]: '1s' });
  });

  test('message run timeout alone sets both', () => {
    const r = resolveRunTimeouts({} as WorkerPoolSpec, { runSeconds: 1800 });
    expect(r.activeDeadlineSeconds).toBe(2100);
    expect(envOf(r)).toEqual({ [ENV_RUN_TIMEOUT]: '30m0s' });
  });

  test('message shorter than pool: message wins and lowers the deadline', () => {
    const r = resolveRunTimeouts(spec({ activeDeadlineSeconds: 4200 }), { runSeconds: 600 });
    expect(r.runTimeoutSeconds).toBe(600);
    expect(r.activeDeadlineSeconds).toBe(900);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('10m0s');
  });

  test('message longer than pool: the pool caps it', () => {
    const r = resolveRunTimeouts(spec({ activeDeadlineSeconds: 4200 }), { runSeconds: 86400 });
    expect(r.activeDeadlineSeconds).toBe(4200);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('1h5m0s');
  });

  test('message shorter than the pool variable replaces it', () => {
    const r = resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '2h' }] } }), {
      runSeconds: 3600,
    });
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('1h0m0s');
    expect(r.activeDeadlineSeconds).toBe(3900);
  });

  test('pool deadline below the message-derived one stays', () => {
    const r = resolveRunTimeouts(
      spec({ activeDeadlineSeconds: 700, workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '2h' }] } }),
      { runSeconds: 600 },
    );
    expect(r.activeDeadlineSeconds).toBe(700);
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('10m0s');
  });

  test('logs timeout: message alone, pool alone, and the earlier of both', () => {
    expect(envOf(resolveRunTimeouts({} as WorkerPoolSpec, { logsSeconds: 900 }))).toEqual({ [ENV_LOGS_TIMEOUT]: '15m0s' });
    const pool = spec({ workerContainer: { env: [{ name: ENV_LOGS_TIMEOUT, value: '20m' }] } });
    expect(envOf(resolveRunTimeouts(pool))).toEqual({ [ENV_LOGS_TIMEOUT]: '20m' });
    expect(envOf(resolveRunTimeouts(pool, { logsSeconds: 600 }))).toEqual({ [ENV_LOGS_TIMEOUT]: '10m0s' });
    expect(envOf(resolveRunTimeouts(pool, { logsSeconds: 3600 }))).toEqual({ [ENV_LOGS_TIMEOUT]: '20m' });
    // The logs timeout does not set a deadline.
    expect(resolveRunTimeouts(pool).activeDeadlineSeconds).toBeUndefined();
  });

  test('the last pool entry of a name wins, as in Kubernetes', () => {
    const r = resolveRunTimeouts(
      spec({
        workerContainer: {
          env: [
            { name: ENV_RUN_TIMEOUT, value: 'garbage' },
            { name: ENV_RUN_TIMEOUT, value: '1h' },
          ],
        },
      }),
    );
    expect(envOf(r)[ENV_RUN_TIMEOUT]).toBe('1h');
  });

  test('valueFrom variables are passed through: not emitted, not derived, warned about', () => {
    const r = resolveRunTimeouts(
      spec({
        workerContainer: {
          env: [
            { name: ENV_RUN_TIMEOUT, valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } },
            { name: ENV_LOGS_TIMEOUT, valueFrom: { configMapKeyRef: { name: 'c', key: 'l' } } },
          ],
        },
      }),
      { runSeconds: 600, logsSeconds: 60 },
    );
    expect(r.env).toEqual([]);
    expect(r.activeDeadlineSeconds).toBe(900);
    // The launcher reads the variables, not the message: the controller does not know the effective limits.
    expect(r.runTimeoutSeconds).toBeUndefined();
    expect(r.logsTimeoutSeconds).toBeUndefined();
    expect(r.warnings).toEqual([
      `${ENV_RUN_TIMEOUT} in spec.pod.workerContainer.env comes from valueFrom, which the controller cannot read: ` +
        'it is passed through unchanged and the Pod deadline does not take it into account',
      `${ENV_LOGS_TIMEOUT} in spec.pod.workerContainer.env comes from valueFrom, which the controller cannot read: ` +
        "it is passed through unchanged and the schedule message's log timeout is ignored",
    ]);
  });

  test('a literal value is read even beside a valueFrom', () => {
    const r = resolveRunTimeouts(
      spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '70m', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } }] } }),
    );
    expect(r.runTimeoutSeconds).toBe(4200);
    expect(r.activeDeadlineSeconds).toBe(4500);
    expect(envOf(r)).toEqual({ [ENV_RUN_TIMEOUT]: '70m' });
    expect(r.warnings).toEqual([]);
  });

  test('blanks around a pool duration are ignored, and the launcher gets the value without them', () => {
    const r = resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: ' 70m ' }] } }));
    expect(r.runTimeoutSeconds).toBe(4200);
    expect(r.activeDeadlineSeconds).toBe(4500);
    // Go's time.ParseDuration refuses " 70m ".
    expect(r.env).toEqual([{ name: ENV_RUN_TIMEOUT, value: '70m' }]);
  });

  test('an empty value beside valueFrom is the valueFrom, as Kubernetes reads it', () => {
    const r = resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT, value: '', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } }] } }), { runSeconds: 600 });
    expect(r.env).toEqual([]);
    expect(r.runTimeoutSeconds).toBeUndefined();
    expect(r.warnings[0]).toMatch(/comes from valueFrom, which the controller cannot read/);
  });

  test('unparseable pool variable: typed error naming the field and the value', () => {
    let err: unknown;
    try {
      resolveRunTimeouts(spec({ workerContainer: { env: [{ name: 'X', value: '1' }, { name: ENV_RUN_TIMEOUT, value: '70 minutes' }] } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidTimeoutError);
    expect(err).toBeInstanceOf(RunConfigError);
    const e = err as InvalidTimeoutError;
    expect(e.field).toBe(`spec.pod.workerContainer.env[1] (${ENV_RUN_TIMEOUT})`);
    expect(e.value).toBe('70 minutes');
    expect(e.message).toContain('"70 minutes"');
    expect(e.message).toContain(ENV_RUN_TIMEOUT);
    expect(e.message).toContain('"70 minutes" is not a Go duration such as "70m" or "1h30m" (time: ');
  });

  test('a pool variable with neither value nor valueFrom is refused as empty', () => {
    const err = errorOf(() => resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_RUN_TIMEOUT }] } })));
    expect(err).toBeInstanceOf(InvalidTimeoutError);
    expect(err.message).toContain(`invalid spec.pod.workerContainer.env[0] (${ENV_RUN_TIMEOUT}): "" is not a Go duration`);
  });

  test('a zero pool duration is refused as not longer than zero', () => {
    const err = errorOf(() => resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_LOGS_TIMEOUT, value: '0s' }] } })));
    expect(err.message).toBe(`invalid spec.pod.workerContainer.env[0] (${ENV_LOGS_TIMEOUT}): "0s" must be longer than zero`);
  });

  test('errors read as their class in logs', () => {
    expect(String(new RunConfigError('spec.pod.x', 1, 'x is wrong'))).toBe('RunConfigError: x is wrong');
    expect(String(errorOf(() => resolveRunTimeouts(spec({ activeDeadlineSeconds: 0 }))))).toBe(
      'InvalidTimeoutError: invalid spec.pod.activeDeadlineSeconds: 0 must be a whole number of seconds, at least 1',
    );
  });

  test.each(['0', '-5m', '', '70'])('pool variable %j is refused', (value) => {
    expect(() => resolveRunTimeouts(spec({ workerContainer: { env: [{ name: ENV_LOGS_TIMEOUT, value }] } }))).toThrow(
      InvalidTimeoutError,
    );
  });

  test.each([0, -1, 1.5])('activeDeadlineSeconds %j is refused', (v) => {
    expect(() => resolveRunTimeouts(spec({ activeDeadlineSeconds: v }))).toThrow(/spec\.pod\.activeDeadlineSeconds/);
  });

  test.each([
    [{ runSeconds: 0 }, 'timeouts.runSeconds of the schedule message: 0'],
    [{ runSeconds: 1.5 }, 'timeouts.runSeconds of the schedule message: 1.5'],
    [{ logsSeconds: -1 }, 'timeouts.logsSeconds of the schedule message: -1'],
    [{ logsSeconds: 0.5 }, 'timeouts.logsSeconds of the schedule message: 0.5'],
  ])('schedule message timeouts %j are refused, naming the field and value', (timeouts, fieldAndValue) => {
    const err = errorOf(() => resolveRunTimeouts(spec({ activeDeadlineSeconds: 4200 }), timeouts));
    expect(err).toBeInstanceOf(InvalidTimeoutError);
    expect(err.message).toBe(`invalid ${fieldAndValue} must be a whole number of seconds, at least 1`);
  });
});
