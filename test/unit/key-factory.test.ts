import { createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyFactory } from '../../src/controller/worker/key-factory.js';
import type { PemKeyPair, WorkerKeyType } from '../../src/protocol/index.js';

/** A generator whose keys are released by hand, to see the order and the bound. */
function manualGenerator(): { generate: (type: WorkerKeyType) => Promise<PemKeyPair>; started: number; types: WorkerKeyType[]; release: (fail?: Error) => void; inFlight: () => number } {
  const pending: { resolve: (k: PemKeyPair) => void; reject: (e: Error) => void; type: WorkerKeyType }[] = [];
  const g = {
    started: 0,
    types: [] as WorkerKeyType[],
    generate: (type: WorkerKeyType) =>
      new Promise<PemKeyPair>((resolve, reject) => {
        g.started++;
        g.types.push(type);
        pending.push({ resolve, reject, type });
      }),
    release: (fail?: Error) => {
      const next = pending.shift();
      if (fail) next?.reject(fail);
      else next?.resolve({ privateKeyPem: `${next.type}-key-${g.started}`, publicKeyPem: 'pub' });
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
    expect(keys.take('ns/w1', 'rsa')).toBeUndefined();
    expect(keys.take('ns/w1', 'rsa')).toBeUndefined(); // asking again does not start a second key
    expect(gen.started).toBe(1);
    gen.release();
    await tick();
    expect(ready).toEqual(['ns/w1']);
    expect(keys.take('ns/w1', 'rsa')?.privateKeyPem).toBe('rsa-key-1');
    expect(keys.pending).toBe(0);
  });

  it('makes at most `concurrency` keys at a time, first asked first made', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 2, gen.generate);
    for (const w of ['a', 'b', 'c', 'd', 'e']) keys.take(w, 'rsa');
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
    keys.take('w', 'rsa');
    gen.release(new Error('out of entropy'));
    await tick();
    expect(() => keys.take('w', 'rsa')).toThrow('out of entropy');
    expect(keys.take('w', 'rsa')).toBeUndefined();
    expect(gen.started).toBe(2);
  });

  it('forgets the key of a Worker that is gone, waiting or being made', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 1, gen.generate);
    keys.take('made', 'rsa');
    keys.take('waiting', 'rsa');
    keys.forget('waiting');
    keys.forget('made');
    gen.release();
    await tick();
    expect(ready).toEqual([]);
    expect(gen.started).toBe(1);
    expect(keys.pending).toBe(0);
  });

  it('makes the key type asked for, and starts again when a different type is asked for (the token changed version)', async () => {
    const gen = manualGenerator();
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 1, gen.generate);
    expect(keys.take('w', 'rsa')).toBeUndefined();
    // The token moved to version 2 while the RSA key was being made: that key is dropped, an ECDSA one made.
    expect(keys.take('w', 'ecdsa-p256')).toBeUndefined();
    gen.release();
    await tick();
    expect(ready).toEqual([]);
    expect(gen.types).toEqual(['rsa', 'ecdsa-p256']);
    gen.release();
    await tick();
    expect(ready).toEqual(['w']);
    expect(keys.take('w', 'ecdsa-p256')?.privateKeyPem).toBe('ecdsa-p256-key-2');
    expect(keys.pending).toBe(0);
  });

  it('by default makes real keys: RSA-2048 for version 1, ECDSA P-256 for version 2', async () => {
    const ready: string[] = [];
    const keys = new KeyFactory((o) => ready.push(o), 2);
    keys.take('v1', 'rsa');
    keys.take('v2', 'ecdsa-p256');
    for (let i = 0; i < 400 && ready.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    const rsa = createPrivateKey(keys.take('v1', 'rsa')?.privateKeyPem ?? '');
    const ec = createPrivateKey(keys.take('v2', 'ecdsa-p256')?.privateKeyPem ?? '');
    expect([rsa.asymmetricKeyType, rsa.asymmetricKeyDetails?.modulusLength]).toEqual(['rsa', 2048]);
    expect([ec.asymmetricKeyType, ec.asymmetricKeyDetails?.namedCurve]).toEqual(['ec', 'prime256v1']);
  });

  it('refuses a concurrency that could never make a key', () => {
    expect(() => new KeyFactory(() => undefined, 0)).toThrow('concurrency must be a positive integer, got 0');
  });
});
