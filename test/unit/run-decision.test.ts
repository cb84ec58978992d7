import { describe, expect, it } from 'vitest';
import { decideRun, runIsOver, type RunPodWithMeta } from '../../src/controller/runs/decision.js';

const now = new Date('2026-11-30T12:00:00Z');
const GRACE = 300_000;

function pod(over: { phase?: string; deleting?: boolean; stop?: boolean; conditions?: { type: string; status: string; reason?: string; message?: string }[]; workerExit?: number }): RunPodWithMeta {
  return {
    metadata: {
      creationTimestamp: '2026-11-30T11:59:00Z',
      ...(over.deleting === true ? { deletionTimestamp: '2026-11-30T11:59:30Z' } : {}),
      annotations: over.stop === true ? { 'workers.spacelift.io/stop-requested': 'true' } : {},
    },
    status: {
      phase: over.phase ?? 'Running',
      conditions: over.conditions,
      containerStatuses:
        over.workerExit === undefined
          ? [{ name: 'worker', state: { running: { startedAt: '2026-11-30T11:59:10Z' } } }]
          : [{ name: 'worker', state: { terminated: { exitCode: over.workerExit, reason: over.workerExit === 0 ? 'Completed' : 'Error', finishedAt: '2026-11-30T11:59:50Z' } } }],
    },
  };
}

describe('decideRun', () => {
  it.each([
    ['a running Pod', pod({}), 'running'],
    ['a Succeeded Pod', pod({ phase: 'Succeeded', workerExit: 0 }), 'finished'],
    ['a Failed Pod', pod({ phase: 'Failed', workerExit: 3 }), 'failed'],
    ['a Succeeded Pod whose stop was requested', pod({ phase: 'Succeeded', workerExit: 0, stop: true }), 'stopped'],
    ['a Pod deleted on a stop request', pod({ deleting: true, stop: true }), 'stopped'],
    ['a Pod deleted by someone else', pod({ deleting: true }), 'failed'],
  ])('%s: %s', (_what, p, status) => {
    expect(decideRun(p, now, GRACE).status).toBe(status);
  });

  it('names an eviction by the condition Kubernetes puts on the Pod', () => {
    const evicted = pod({ deleting: true, conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' }] });
    expect(decideRun(evicted, now, GRACE)).toEqual({ status: 'failed', reason: 'the run Pod was evicted before the run ended (EvictionByEvictionAPI: Eviction API: evicting)' });
  });

  it('says deleted, not evicted, when nothing names an eviction', () => {
    const deleted = pod({ deleting: true, conditions: [{ type: 'DisruptionTarget', status: 'False', reason: 'EvictionByEvictionAPI' }] });
    expect(decideRun(deleted, now, GRACE).reason).toBe('the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)');
  });

  it('says deleted, keeping the exit code, when the worker died of the deletion (the end decided after the kubelet stopped it)', () => {
    // Deletion asked at 11:59:30 with a 30 s grace; the worker ended at 11:59:50, of the SIGTERM.
    const killed = pod({ phase: 'Failed', workerExit: 143, deleting: true });
    const withGrace = { ...killed, metadata: { ...killed.metadata, deletionTimestamp: '2026-11-30T12:00:00Z', deletionGracePeriodSeconds: 30 } };
    expect(decideRun(withGrace, now, GRACE)).toEqual({
      status: 'failed',
      reason: 'the run Pod was deleted before the run ended (evicted, node drained or deleted by hand)',
      exitCode: 143,
    });
  });

  it('keeps the exit code as the reason when the worker had ended before the deletion', () => {
    // Ended at 11:59:50, deletion asked at 12:00:30 (deletionTimestamp 12:01:00 with a 30 s grace).
    const failed = pod({ phase: 'Failed', workerExit: 3, deleting: true });
    const later = { ...failed, metadata: { ...failed.metadata, deletionTimestamp: '2026-11-30T12:01:00Z', deletionGracePeriodSeconds: 30 } };
    expect(decideRun(later, now, GRACE)).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(decideRun(later, now, GRACE).reason).not.toContain('deleted');
  });

  it('fails a Pod that cannot start once the grace is over, and asks for its events', () => {
    const stuck: RunPodWithMeta = {
      metadata: { creationTimestamp: '2026-11-30T11:00:00Z' },
      status: { phase: 'Pending', containerStatuses: [{ name: 'worker', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } }] },
    };
    const d = decideRun(stuck, now, GRACE);
    expect(d).toMatchObject({ status: 'failed', deletePod: true, withEvents: true });
    expect(d.reason).toMatch(/ImagePullBackOff/);
  });
});

describe('runIsOver', () => {
  it('holds once the decision is final, reported or not', () => {
    expect(runIsOver(pod({ phase: 'Succeeded', workerExit: 0 }), now, GRACE)).toBe(true);
    expect(runIsOver(pod({ deleting: true }), now, GRACE)).toBe(true);
    expect(runIsOver(pod({}), now, GRACE)).toBe(false);
    expect(runIsOver({ metadata: { creationTimestamp: '2026-11-30T11:59:59Z' }, status: { phase: 'Pending' } }, now, GRACE)).toBe(false);
  });
});
