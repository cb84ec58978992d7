import { describe, expect, it } from 'vitest';
import { KeyFactory } from '../../src/controller/worker/key-factory.js';
import type { RsaKeyPair } from '../../src/protocol/index.js';

/** A generator whose keys are released by hand, to see the order and the bound. */
function manualGenerator(): { generate: () => Promise<RsaKeyPair>; started: number; release: (fail?: Error) => void; inFlight: () => number } {
  const pending: { resolve: (k: RsaKeyPair) => void; reject: (e: Error) => void }[] = [];
  const g = {
    started: 0,
    generate: () =>
      new Promise<RsaKeyPair>((resolve, reject) => {
        g.started++;
        pending.push({ resolve, reject });
      }),
    release: (fail?: Error) => {
      const next = pending.shift();
      if (fail) next?.reject(fail);
      else next?.resolve({ privateKeyPem: `key-${g.started}`, publicKeyPem: 'pub' });
    },
    inFlight: () => pending.length,
  };
  return g;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyFactory', () => {
  it('starts a key on first ask, returns nothing until it is ready, then hands it over once and calls back', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 2, gen.generate);
    expect(keys.take('ns/w1')).toBeUndefined();
    expect(keys.take('ns/w1')).toBeUndefined(); // asking again does not start a second key
    expect(gen.started).toBe(1);
    gen.release();
    await tick();
    expect(ready).toEqual(['ns/w1']);
    expect(keys.take('ns/w1')?.privateKeyPem).toBe('key-1');
    expect(keys.pending).toBe(0);
  });

  it('makes at most `concurrency` keys at a time, first asked first made', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 2, gen.generate);
    for (const w of ['a', 'b', 'c', 'd', 'e']) keys.take(w);
    expect(gen.inFlight()).toBe(2);
    gen.release();
    await tick();
    expect(gen.inFlight()).toBe(2);
    expect(gen.started).toBe(3);
    for (let i = 0; i < 4; i++) {
      gen.release();
      await tick();
    }
    expect(ready).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(gen.inFlight()).toBe(0);
  });

  it('throws a failed generation once, then starts again', async () => {
    const gen = manualGenerator();
    const keys = new KeyFactory(() => undefined, 1, gen.generate);
    keys.take('w');
    gen.release(new Error('out of entropy'));
    await tick();
    expect(() => keys.take('w')).toThrow('out of entropy');
    expect(keys.take('w')).toBeUndefined();
    expect(gen.started).toBe(2);
  });

  it('forgets the key of a Worker that is gone, waiting or being made', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 1, gen.generate);
    keys.take('made');
    keys.take('waiting');
    keys.forget('waiting');
    keys.forget('made');
    gen.release();
    await tick();
    expect(ready).toEqual([]);
    expect(gen.started).toBe(1);
    expect(keys.pending).toBe(0);
  });

  it('refuses a concurrency that could never make a key', () => {
    expect(() => new KeyFactory(() => undefined, 0)).toThrow('concurrency must be a positive integer, got 0');
  });
});
