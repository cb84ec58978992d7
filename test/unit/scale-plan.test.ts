import { describe, expect, test } from 'vitest';
import { planScale, WorkerSummary } from '../../src/controller/pool/scale-plan.js';

function w(name: string, over: Partial<WorkerSummary> = {}): WorkerSummary {
  return { name, draining: false, deleting: false, registered: true, busy: false, idleSince: '2026-01-01T00:00:00Z', ...over };
}

describe('scale up', () => {
  test('creates the missing workers', () => {
    expect(planScale(5, [w('a'), w('b')])).toEqual({ create: 3, drain: [], undrain: [] });
  });

  test('takes back draining workers before creating new ones, busy ones first', () => {
    const plan = planScale(3, [w('a'), w('b', { draining: true }), w('c', { draining: true, busy: true }), w('d', { draining: true })]);
    expect(plan).toEqual({ create: 0, drain: [], undrain: ['c', 'b'] });
  });

  test('workers being deleted do not count', () => {
    expect(planScale(2, [w('a'), w('b', { deleting: true })])).toEqual({ create: 1, drain: [], undrain: [] });
  });

  test('a draining worker being deleted is never taken back', () => {
    // It is going away whatever the plan says; counting it as taken back would leave the pool one short.
    expect(planScale(2, [w('a'), w('b', { draining: true, deleting: true }), w('c', { draining: true, busy: true, deleting: true })])).toEqual({ create: 1, drain: [], undrain: [] });
    expect(planScale(3, [w('a'), w('b', { draining: true, busy: true, deleting: true }), w('c', { draining: true })])).toEqual({ create: 1, drain: [], undrain: ['c'] });
  });
});

describe('scale down', () => {
  test('never picks a busy worker while an idle one is left', () => {
    const plan = planScale(1, [w('busy1', { busy: true }), w('idle1'), w('busy2', { busy: true })]);
    expect(plan.drain).toHaveLength(2);
    expect(plan.drain[0]).toBe('idle1');
    expect(plan.drain).not.toEqual(expect.arrayContaining(['busy1', 'busy2']));
  });

  test('unregistered workers go first, then the one idle longest', () => {
    const plan = planScale(1, [
      w('new-idle', { idleSince: '2026-01-01T00:10:00Z' }),
      w('old-idle', { idleSince: '2026-01-01T00:01:00Z' }),
      w('pending', { registered: false }),
    ]);
    expect(plan.drain).toEqual(['pending', 'old-idle']);
    // Unregistered first even when it has been idle for less time than the others.
    expect(planScale(1, [w('old-idle', { idleSince: '2026-01-01T00:01:00Z' }), w('pending', { registered: false, idleSince: '2026-01-01T00:30:00Z' })]).drain).toEqual(['pending']);
  });

  test('to zero, busy workers are drained, not removed outright', () => {
    expect(planScale(0, [w('a', { busy: true }), w('b')])).toEqual({ create: 0, drain: ['b', 'a'], undrain: [] });
  });

  test('already draining workers are not picked again', () => {
    expect(planScale(1, [w('a', { draining: true }), w('b'), w('c')]).drain).toEqual(['b']);
  });
});

test('at the right size nothing changes', () => {
  expect(planScale(2, [w('a'), w('b'), w('c', { draining: true })])).toEqual({ create: 0, drain: [], undrain: [] });
});
