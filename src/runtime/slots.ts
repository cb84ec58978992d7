/**
 * At most `size` holders at once, the others waiting in arrival order: for
 * bursts of work that each cost a little but must not all start together.
 */
export class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new Error(`slots: size must be a positive integer, got ${size}`);
  }

  /** Holders now. */
  get inUse(): number {
    return this.held;
  }

  /**
   * Resolves with the slot's release (calling it twice frees one slot) once a
   * slot is free; rejects with the signal's reason if it fires first, taking
   * no slot.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.held < this.size) {
      this.held++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiting.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the next waiter, if any: the count stays.
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.held--;
    };
  }
}
