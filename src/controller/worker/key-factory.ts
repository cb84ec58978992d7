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
import { generateWorkerKeyPair, type PemKeyPair, type WorkerKeyType } from '../../protocol/index.js';

interface Job {
  readonly type: WorkerKeyType;
  done?: PemKeyPair;
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
    private readonly generate: (type: WorkerKeyType) => Promise<PemKeyPair> = generateWorkerKeyPair,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`key factory: concurrency must be a positive integer, got ${concurrency}`);
  }

  /**
   * The pair of `type` made for `owner`, once; undefined while it is being
   * made (the first call starts it). A failed generation is thrown once, and
   * the next call starts again. A pair of another type (the pool's token
   * changed protocol version meanwhile) is dropped and a new one started.
   */
  take(owner: string, type: WorkerKeyType): PemKeyPair | undefined {
    const job = this.jobs.get(owner);
    if (job === undefined || job.type !== type) {
      if (job !== undefined) this.forget(owner);
      this.jobs.set(owner, { type });
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
      const job = this.jobs.get(owner) as Job;
      this.running++;
      this.generate(job.type).then(
        (pair) => this.settle(owner, job, { done: pair }),
        (error: unknown) => this.settle(owner, job, { failed: { error } }),
      );
    }
  }

  private settle(owner: string, job: Job, outcome: Pick<Job, 'done' | 'failed'>): void {
    this.running--;
    // Only the job still asked for: one forgotten or replaced meanwhile is dropped.
    if (this.jobs.get(owner) === job) {
      Object.assign(job, outcome);
      this.onReady(owner);
    }
    this.pump();
  }
}
