import { describe, expect, test } from 'vitest';
import type { WorkerPoolSpec } from '../../src/api/types.js';
import {
  DEFAULT_FAILED_PODS_HISTORY_LIMIT,
  HistoryConfigError,
  historyPolicy,
  planPodHistory,
  type HistoryPod,
} from '../../src/controller/runs/pod-history.js';
import { errorOf } from '../support/error-of.js';

const NOW = new Date('2026-01-01T12:00:00Z');
const ago = (min: number): Date => new Date(NOW.getTime() - min * 60_000);
const spec = (s: Record<string, unknown> = {}) => (s) as WorkerPoolSpec;

function ok(name: string, minAgo: number): HistoryPod {
  return { name, result: 'succeeded', finishedAt: ago(minAgo) };
}
function bad(name: string, minAgo: number): HistoryPod {
  return { name, result: 'failed', finishedAt: ago(minAgo) };
}
const failed = (n: number): HistoryPod[] => Array.from({ length: n }, (_, i) => bad(`f${i}`, i + 1)); // f0 newest

describe('historyPolicy', () => {
  test('defaults: successful deleted, 5 failed kept, no TTL', () => {
    expect(DEFAULT_FAILED_PODS_HISTORY_LIMIT).toBe(5);
    expect(historyPolicy(spec())).toEqual({ successful: { limit: 0 }, failed: { limit: 5 } });
  });
  test('keepSuccessfulPods lifts the successful limit', () => {
    // Strict: "no limit" and "no TTL" are absent fields, not fields holding undefined.
    expect(historyPolicy(spec({ keepSuccessfulPods: true })).successful).toStrictEqual({});
    expect(historyPolicy(spec({ keepSuccessfulPods: false })).successful).toStrictEqual({ limit: 0 });
  });
  test('explicit limits win over keepSuccessfulPods', () => {
    expect(historyPolicy(spec({ keepSuccessfulPods: true, successfulPodsHistoryLimit: 2 })).successful).toEqual({ limit: 2 });
    expect(historyPolicy(spec({ keepSuccessfulPods: false, successfulPodsHistoryLimit: 3 })).successful).toEqual({ limit: 3 });
  });
  test('a TTL lifts the default limit of its class', () => {
    expect(historyPolicy(spec({ successfulPodsHistoryTTL: '1h', failedPodsHistoryTTL: '24h' }))).toEqual({
      successful: { ttlMs: 3_600_000 },
      failed: { ttlMs: 86_400_000 },
    });
    expect(historyPolicy(spec({ failedPodsHistoryTTL: '24h', failedPodsHistoryLimit: 2 })).failed).toEqual({ limit: 2, ttlMs: 86_400_000 });
  });
  test('invalid settings: typed error naming the field and value', () => {
    const e = (() => {
      try {
        historyPolicy(spec({ failedPodsHistoryTTL: '1 day' }));
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(HistoryConfigError);
    expect((e as HistoryConfigError).field).toBe('failedPodsHistoryTTL');
    expect((e as Error).message).toContain('"1 day"');
    expect(() => historyPolicy(spec({ successfulPodsHistoryTTL: '-1h' }))).toThrow(/successfulPodsHistoryTTL/);
    expect(() => historyPolicy(spec({ failedPodsHistoryLimit: -1 }))).toThrow(/failedPodsHistoryLimit/);
    expect(() => historyPolicy(spec({ successfulPodsHistoryLimit: 1.5 }))).toThrow(/successfulPodsHistoryLimit/);
  });
  test('errors read as their class in logs and say what is wrong', () => {
    expect(String(errorOf(() => historyPolicy(spec({ failedPodsHistoryLimit: -1 }))))).toBe(
      'HistoryConfigError: invalid failedPodsHistoryLimit: -1 must be a whole number, 0 or more',
    );
    expect(errorOf(() => historyPolicy(spec({ successfulPodsHistoryTTL: '-1h' }))).message).toBe(
      'invalid successfulPodsHistoryTTL: "-1h" must not be negative',
    );
    expect(errorOf(() => historyPolicy(spec({ failedPodsHistoryTTL: '1 day' }))).message).toContain(
      'invalid failedPodsHistoryTTL: "1 day" is not a Go duration such as "24h" or "1h30m" (time: ',
    );
  });
  test('blanks around a TTL are ignored', () => {
    expect(historyPolicy(spec({ failedPodsHistoryTTL: ' 1h ' })).failed).toStrictEqual({ ttlMs: 3_600_000 });
  });
});

describe('planPodHistory', () => {
  test('defaults: a successful Pod is deleted when done', () => {
    expect(planPodHistory([ok('s1', 0)], spec(), NOW)).toEqual({ delete: ['s1'] });
  });

  test('keepSuccessfulPods: successful Pods stay', () => {
    expect(planPodHistory([ok('s1', 10), ok('s2', 0)], spec({ keepSuccessfulPods: true }), NOW)).toEqual({ delete: [] });
  });

  test('defaults: the 5 newest failed Pods are kept, older ones deleted oldest first', () => {
    const plan = planPodHistory(failed(8), spec(), NOW);
    expect(plan.delete).toEqual(['f7', 'f6', 'f5']);
    expect(plan.requeueAfterMs).toBeUndefined();
  });

  test('failed limit 0 deletes every failed Pod', () => {
    expect(planPodHistory(failed(2), spec({ failedPodsHistoryLimit: 0 }), NOW).delete).toEqual(['f1', 'f0']);
  });

  test('running and pending Pods are never returned nor counted', () => {
    const pods: HistoryPod[] = [{ name: 'r', result: 'running' }, { name: 'p', result: 'pending' }, ...failed(5)];
    expect(planPodHistory(pods, spec({ failedPodsHistoryLimit: 5 }), NOW).delete).toEqual([]);
    expect(planPodHistory([{ name: 'r', result: 'running' }], spec({ failedPodsHistoryLimit: 0, successfulPodsHistoryLimit: 0 }), NOW)).toEqual({ delete: [] });
  });

  test('failed TTL: expired Pods go, the next expiry is reported', () => {
    // TTL 1h: f at 90 and 61 minutes are expired; 30 and 10 minutes expire in 30 and 50 minutes.
    const pods = [bad('a', 90), bad('b', 61), bad('c', 30), bad('d', 10)];
    const plan = planPodHistory(pods, spec({ failedPodsHistoryTTL: '1h' }), NOW);
    expect(plan.delete).toEqual(['a', 'b']);
    expect(plan.nextExpiryAt).toEqual(new Date(NOW.getTime() + 30 * 60_000));
    expect(plan.requeueAfterMs).toBe(30 * 60_000);
  });

  test('a Pod exactly at its TTL is deleted', () => {
    expect(planPodHistory([bad('a', 60)], spec({ failedPodsHistoryTTL: '1h' }), NOW).delete).toEqual(['a']);
  });

  test('a TTL of zero deletes Pods as soon as they end', () => {
    expect(planPodHistory([bad('f', 0), ok('s', 0)], spec({ failedPodsHistoryTTL: '0s', successfulPodsHistoryTTL: '0s' }), NOW)).toEqual({
      delete: ['f', 's'],
    });
  });

  test('limit and TTL together: whichever deletes first', () => {
    const pods = [bad('old', 120), bad('mid', 50), bad('new', 5)];
    const plan = planPodHistory(pods, spec({ failedPodsHistoryLimit: 2, failedPodsHistoryTTL: '1h' }), NOW);
    expect(plan.delete).toEqual(['old']);
    expect(plan.requeueAfterMs).toBe(10 * 60_000);
  });

  test('successful TTL alone keeps successful Pods until it runs out', () => {
    const plan = planPodHistory([ok('s-old', 45), ok('s-new', 5)], spec({ successfulPodsHistoryTTL: '30m' }), NOW);
    expect(plan.delete).toEqual(['s-old']);
    expect(plan.requeueAfterMs).toBe(25 * 60_000);
  });

  test('keepSuccessfulPods with a TTL: kept until the TTL', () => {
    const plan = planPodHistory([ok('s', 5)], spec({ keepSuccessfulPods: true, successfulPodsHistoryTTL: '10m' }), NOW);
    expect(plan).toEqual({ delete: [], nextExpiryAt: new Date(NOW.getTime() + 5 * 60_000), requeueAfterMs: 5 * 60_000 });
  });

  test('the earliest expiry across both classes is reported', () => {
    const plan = planPodHistory(
      [ok('s', 5), bad('f', 5)],
      spec({ successfulPodsHistoryTTL: '1h', failedPodsHistoryTTL: '10m' }),
      NOW,
    );
    expect(plan.delete).toEqual([]);
    expect(plan.requeueAfterMs).toBe(5 * 60_000);
  });

  test('classes are counted separately', () => {
    const pods = [ok('s1', 1), ok('s2', 2), ok('s3', 3), bad('f1', 1), bad('f2', 2)];
    const plan = planPodHistory(pods, spec({ successfulPodsHistoryLimit: 1, failedPodsHistoryLimit: 1 }), NOW);
    expect(plan.delete).toEqual(['f2', 's3', 's2']);
  });

  test('ties in finish time are broken by name, stably', () => {
    const pods = [bad('b', 1), bad('a', 1), bad('c', 1)];
    const plan1 = planPodHistory(pods, spec({ failedPodsHistoryLimit: 1 }), NOW);
    const plan2 = planPodHistory([...pods].reverse(), spec({ failedPodsHistoryLimit: 1 }), NOW);
    expect(plan1).toEqual(plan2);
    expect(plan1.delete).toHaveLength(2);
  });

  test('of Pods that ended together, the greatest name is kept and the rest go in name order', () => {
    const pods = [bad('b', 90), bad('a', 90), bad('c', 90)];
    expect(planPodHistory(pods, spec({ failedPodsHistoryLimit: 1 }), NOW).delete).toEqual(['a', 'b']);
    expect(planPodHistory(pods, spec({ failedPodsHistoryLimit: 0 }), NOW).delete).toEqual(['a', 'b', 'c']);
    // Over the limit and past the TTL at once: still one list in name order.
    expect(planPodHistory(pods, spec({ failedPodsHistoryLimit: 1, failedPodsHistoryTTL: '1h' }), NOW).delete).toEqual(['a', 'b', 'c']);
  });

  test('an invalid setting throws rather than deleting anything', () => {
    expect(() => planPodHistory(failed(10), spec({ failedPodsHistoryTTL: 'soon' }), NOW)).toThrow(HistoryConfigError);
  });
});
