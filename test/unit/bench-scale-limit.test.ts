import { describe, expect, test } from 'vitest';
import { withConcurrency } from '../../bench/lib/concurrency.js';
import { controllerWrites, share } from '../../bench/scale-limit.js';

describe('the scale-out limit replays the controller writes', () => {
  test('controllerWrites keeps writes on the controller resources, subresources included, and nothing else', () => {
    const counts = new Map([
      ['POST workers', 100],
      ['PATCH workers/status', 230],
      ['POST secrets', 100],
      ['PUT secrets', 100],
      ['DELETE pods', 3],
      ['GET workers', 7],
      ['LIST secrets', 1],
      ['WATCH pods', 2],
      ['PUT leases', 4],
      ['POST endpoints', 1],
    ]);
    expect(Object.fromEntries(controllerWrites(counts, ['workerpools', 'workers', 'pods', 'secrets', 'events']))).toEqual({
      'POST workers': 100,
      'PATCH workers/status': 230,
      'POST secrets': 100,
      'PUT secrets': 100,
      'DELETE pods': 3,
    });
  });

  test('share spreads a total over the workers, the first ones one more, losing nothing', () => {
    expect(Array.from({ length: 4 }, (_, i) => share(230, 100, i))).toEqual([3, 3, 3, 3]);
    expect(share(230, 100, 29)).toBe(3);
    expect(share(230, 100, 30)).toBe(2);
    for (const [total, n] of [[230, 100], [7, 3], [2, 5], [0, 4]] as const) {
      expect(Array.from({ length: n }, (_, i) => share(total, n, i)).reduce((a, v) => a + v, 0)).toBe(total);
    }
  });

  test('withConcurrency runs every job once, never more at once than asked', async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await withConcurrency(50, 8, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, i % 3));
      seen.push(i);
      running--;
    });
    expect(peak).toBe(8);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
