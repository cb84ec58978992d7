/**
 * Worker key pairs made outside the reconcile that needs them.
 *
 * Why: a reconcile that awaited its key held a worker-queue slot for the
 * whole key generation. In a scale-out of 1000 workers every slot was taken
 * by reconciles waiting for keys, and a worker whose session had just
 * connected waited behind them: its status said "not connected" for 52 s
 * (p50) after the backend saw it online (docs/benchmarks.md). Now the
 * reconcile asks for its key, returns at once if it is not ready, and is
 * queued again when it is.
 *
 * At most `concurrency` keys are made at a time, in the order asked for:
 * key generation runs on libuv's thread pool, which DNS lookups and file
 * work share, and those must not queue behind a thousand keys.
 *
 * Keys live here only between being made and being taken; a process that
 * dies meanwhile loses them, and the Worker's next reconcile asks again.
 *
 * @module
 */
import { generateRsaKeyPair, type RsaKeyPair } from '../../protocol/index.js';

interface Job {
  done?: RsaKeyPair;
  failed?: { readonly error: unknown };
}

export class KeyFactory {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: string[] = [];
  private running = 0;

  constructor(
    /** Called with the key's owner when its pair is ready (or failed): queue its reconcile. */
    private readonly onReady: (owner: string) => void,
    private readonly concurrency: number,
    private readonly generate: () => Promise<RsaKeyPair> = () => generateRsaKeyPair(),
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`key factory: concurrency must be a positive integer, got ${concurrency}`);
  }

  /**
   * The pair made for `owner`, once; undefined while it is being made (the
   * first call starts it). A failed generation is thrown once, and the next
   * call starts again.
   */
  take(owner: string): RsaKeyPair | undefined {
    const job = this.jobs.get(owner);
    if (job === undefined) {
      this.jobs.set(owner, {});
      this.waiting.push(owner);
      this.pump();
      return undefined;
    }
    if (job.failed !== undefined) {
      this.jobs.delete(owner);
      throw job.failed.error;
    }
    if (job.done !== undefined) this.jobs.delete(owner);
    return job.done;
  }

  /** Drops a key not yet taken (its Worker is gone); one being made is dropped when done. */
  forget(owner: string): void {
    const at = this.waiting.indexOf(owner);
    if (at >= 0) this.waiting.splice(at, 1);
    this.jobs.delete(owner);
  }

  /** Keys asked for and not yet taken. */
  get pending(): number {
    return this.jobs.size;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.waiting.length > 0) {
      const owner = this.waiting.shift() as string;
      this.running++;
      this.generate().then(
        (pair) => this.settle(owner, { done: pair }),
        (error: unknown) => this.settle(owner, { failed: { error } }),
      );
    }
  }

  private settle(owner: string, outcome: Job): void {
    this.running--;
    const job = this.jobs.get(owner);
    if (job !== undefined) {
      Object.assign(job, outcome);
      this.onReady(owner);
    }
    this.pump();
  }
}
