/**
 * Watches held on a worker thread (see watch-thread.mjs): event times are
 * taken where the bytes arrive, on a thread the bench's own work cannot block.
 * Times are epoch milliseconds with sub-millisecond precision
 * (`performance.timeOrigin + performance.now()`), comparable across threads.
 */
import { Worker } from 'node:worker_threads';
import type { KubeConfig } from '@kubernetes/client-node';
import type https from 'node:https';

export interface WatchedObject {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  status?: Record<string, unknown>;
  spec?: Record<string, unknown>;
}

export interface WatchEvent {
  t: number;
  type: string;
  object: WatchedObject;
}

type Message =
  | { id: number; kind: 'ready'; t: number }
  | { id: number; kind: 'event'; t: number; type: string; object: WatchedObject }
  | { id: number; kind: 'resumed' }
  | { id: number; kind: 'error'; error: string };

export const nowMs = (): number => performance.timeOrigin + performance.now();

export class WatchThread {
  private readonly worker: Worker;
  private next = 1;
  private readonly handlers = new Map<number, { onEvent: (e: WatchEvent) => void; ready: (t: number) => void; fail: (e: Error) => void }>();
  private readonly errors: string[] = [];
  /** Watches the server ended and the thread resumed from their last resourceVersion. */
  resumes = 0;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (m: Message) => {
      const h = this.handlers.get(m.id);
      if (h === undefined) return;
      if (m.kind === 'ready') h.ready(m.t);
      else if (m.kind === 'event') h.onEvent({ t: m.t, type: m.type, object: m.object });
      else if (m.kind === 'error') {
        this.errors.push(m.error);
        h.fail(new Error(m.error));
      } else if (m.kind === 'resumed') this.resumes++;
    });
    worker.unref();
  }

  static async start(kc: KubeConfig): Promise<WatchThread> {
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const server = kc.getCurrentCluster()?.server.replace(/\/+$/, '') ?? '';
    const tls = { ca: opts.ca, cert: opts.cert, key: opts.key };
    const worker = new Worker(new URL('./watch-thread.mjs', import.meta.url), { workerData: { server, tls } });
    return new WatchThread(worker);
  }

  /** Opens a watch; resolves when the server has answered (the watch is live) with a stop function. */
  async watch(path: string, query: Record<string, string>, onEvent: (e: WatchEvent) => void): Promise<() => void> {
    const id = this.next++;
    await new Promise<number>((ready, fail) => {
      this.handlers.set(id, { onEvent, ready, fail });
      this.worker.postMessage({ cmd: 'watch', id, path, query });
    });
    return () => {
      this.handlers.delete(id);
      this.worker.postMessage({ cmd: 'stop', id });
    };
  }

  /** Watch failures and early ends seen so far (a healthy run has none). */
  get problems(): readonly string[] {
    return this.errors;
  }

  async close(): Promise<void> {
    this.handlers.clear();
    this.worker.postMessage({ cmd: 'close' });
    await this.worker.terminate();
  }
}
