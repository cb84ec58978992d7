import { describe, expect, test } from 'vitest';
import { Slots } from '../../src/runtime/slots.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('slots', () => {
  test('never more holders than slots; waiters served in arrival order as slots free', async () => {
    const slots = new Slots(2);
    const order: number[] = [];
    const releases: (() => void)[] = [];
    for (let i = 0; i < 5; i++) {
      void slots.acquire().then((release) => {
        order.push(i);
        releases.push(release);
      });
    }
    await tick();
    expect(order).toEqual([0, 1]);
    expect(slots.inUse).toBe(2);
    releases[0]?.();
    releases[0]?.(); // a second call frees nothing more
    await tick();
    expect(order).toEqual([0, 1, 2]);
    expect(slots.inUse).toBe(2);
    releases[1]?.();
    releases[2]?.();
    await tick();
    expect(order).toEqual([0, 1, 2, 3, 4]);
    releases[3]?.();
    releases[4]?.();
    expect(slots.inUse).toBe(0);
  });

  test('a waiter whose signal fires leaves the line with the reason and takes no slot', async () => {
    const slots = new Slots(1);
    const first = await slots.acquire();
    const abort = new AbortController();
    const waiting = slots.acquire(abort.signal);
    const after = slots.acquire();
    abort.abort(new Error('stopped'));
    await expect(waiting).rejects.toThrow('stopped');
    first();
    const release = await after;
    expect(slots.inUse).toBe(1);
    release();
    expect(slots.inUse).toBe(0);
    await expect(slots.acquire(abort.signal)).rejects.toThrow('stopped');
    expect(slots.inUse).toBe(0);
  });

  test('refuses a size that is not a positive integer, naming it', () => {
    expect(() => new Slots(0)).toThrow('slots: size must be a positive integer, got 0');
    expect(() => new Slots(1.5)).toThrow('slots: size must be a positive integer, got 1.5');
  });
});
