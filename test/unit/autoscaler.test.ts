import { describe, expect, it } from 'vitest';
import { recommend, type AutoscalingSpec } from '../../src/controller/pool/autoscaler.js';

const spec: AutoscalingSpec = { minPoolSize: 0, maxPoolSize: 3, scaleDownDelay: '2m' };
const t0 = new Date('2026-11-30T12:00:00Z');
const at = (seconds: number): Date => new Date(t0.getTime() + seconds * 1000);
const demand = (busyWorkers: number, pendingRuns: number, seconds = 0) => ({ busyWorkers, pendingRuns, observedAt: at(seconds) });

describe('recommend', () => {
  it('scales up at once to busy plus pending, and says so in an event', () => {
    const r = recommend(spec, undefined, 0, demand(0, 2), t0);
    expect(r.size).toBe(2);
    expect(r.reason).toBe('ScaledUp');
    expect(r.event).toBe('scaled up from 0 to 2 worker(s): 0 busy, 2 pending');
    expect(r.status).toMatchObject({ recommendation: 2, pendingRuns: 2, busyWorkers: 0, lastScaleTime: '2026-11-30T12:00:00Z' });
  });

  it('stops at maxPoolSize and says the queue is longer than the pool', () => {
    const r = recommend(spec, undefined, 1, demand(1, 9), t0);
    expect(r.size).toBe(3);
    expect(r.message).toContain('at the maximum');
    const again = recommend(spec, r.status, 3, demand(3, 7), at(1));
    expect(again).toMatchObject({ size: 3, reason: 'AtMaximum' });
    expect(again.event).toBeUndefined();
  });

  it('keeps minPoolSize when nothing waits', () => {
    expect(recommend({ ...spec, minPoolSize: 2 }, undefined, 0, demand(0, 0), t0).size).toBe(2);
  });

  it('scales down only after the delay, to the highest demand seen meanwhile', () => {
    const up = recommend(spec, undefined, 0, demand(3, 0), t0);
    const dip = recommend(spec, up.status, 3, demand(1, 0, 10), at(10));
    expect(dip).toMatchObject({ size: 3, reason: 'ScaleDownPending', recheckAfterMs: 120_000 });
    expect(dip.status.scaleDownPendingSince).toBe('2026-11-30T12:00:10Z');
    const higher = recommend(spec, dip.status, 3, demand(2, 0, 60), at(60));
    expect(higher).toMatchObject({ size: 3, reason: 'ScaleDownPending', recheckAfterMs: 70_000 });
    expect(higher.status.scaleDownTarget).toBe(2);
    const lower = recommend(spec, higher.status, 3, demand(0, 0, 100), at(100));
    expect(lower.status.scaleDownTarget).toBe(2);
    const due = recommend(spec, lower.status, 3, demand(0, 0, 130), at(130));
    expect(due).toMatchObject({ size: 2, reason: 'ScaledDown' });
    expect(due.event).toBe('scaled down from 3 to 2 worker(s): 0 busy, 0 pending, after 2m of lower demand');
    expect(due.status.scaleDownPendingSince).toBeUndefined();
  });

  it('cancels a pending scale-down when demand comes back', () => {
    const up = recommend(spec, undefined, 0, demand(2, 0), t0);
    const dip = recommend(spec, up.status, 2, demand(0, 0, 10), at(10));
    expect(dip.reason).toBe('ScaleDownPending');
    const burst = recommend(spec, dip.status, 2, demand(0, 2, 20), at(20));
    expect(burst).toMatchObject({ size: 2, reason: 'Stable' });
    expect(burst.status.scaleDownPendingSince).toBeUndefined();
    // A later dip starts a new delay, not the old one.
    const dip2 = recommend(spec, burst.status, 2, demand(0, 0, 200), at(200));
    expect(dip2).toMatchObject({ reason: 'ScaleDownPending', recheckAfterMs: 120_000 });
  });

  it('never goes below the busy workers, so a scale-down takes idle ones only', () => {
    const r = recommend(spec, { recommendation: 3, scaleDownPendingSince: '2026-11-30T11:00:00Z', scaleDownTarget: 0 }, 3, demand(2, 0), t0);
    expect(r.size).toBe(2);
  });

  it('keeps the size when the demand cannot be read', () => {
    const r = recommend(spec, { recommendation: 2 }, 2, undefined, t0);
    expect(r).toMatchObject({ size: 2, reason: 'DemandUnknown' });
  });

  it('brings a size outside new bounds back within them', () => {
    expect(recommend({ minPoolSize: 1, maxPoolSize: 2 }, { recommendation: 5 }, 5, demand(0, 0), t0).size).toBe(2);
  });
});
