/**
 * Writes the pool reconciler made that its cache has not shown yet. Without
 * them, a reconcile that runs before the informer delivers the Workers it
 * just created would create them again (client-go's "expectations").
 * In memory only: a restarted controller lists everything afresh.
 */
export class Expectations {
  private readonly pending = new Map<string, Map<string, 'create' | 'drain' | 'undrain'>>();

  expect(poolKey: string, workerName: string, what: 'create' | 'drain' | 'undrain'): void {
    let forPool = this.pending.get(poolKey);
    if (forPool === undefined) {
      forPool = new Map();
      this.pending.set(poolKey, forPool);
    }
    forPool.set(workerName, what);
  }

  /** Called when the cache shows the Worker (with `draining` as its annotation says). */
  observe(poolKey: string, workerName: string, draining: boolean): void {
    const forPool = this.pending.get(poolKey);
    const what = forPool?.get(workerName);
    if (what === undefined) return;
    if (what === 'create' || (what === 'drain' && draining) || (what === 'undrain' && !draining)) {
      forPool?.delete(workerName);
      if (forPool?.size === 0) this.pending.delete(poolKey);
    }
  }

  /** Workers of the pool still expected, by what is expected of them. */
  of(poolKey: string): ReadonlyMap<string, 'create' | 'drain' | 'undrain'> {
    return this.pending.get(poolKey) ?? new Map();
  }

  forget(poolKey: string, workerName?: string): void {
    if (workerName === undefined) this.pending.delete(poolKey);
    else this.pending.get(poolKey)?.delete(workerName);
  }
}
