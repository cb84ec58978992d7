/**
 * Run logs: the controller follows each running run's `worker` container log
 * through the Kubernetes API (what `kubectl logs -f` reads) and appends it to
 * the backend, which stores it at byte offsets. Nothing in the run Pod can
 * reach the backend, and the Pod holds no credential to do so.
 *
 * Resumable without gap or duplicate: the backend says how many bytes it
 * holds, the relay reads the log from its first byte, skips that many and
 * appends the rest at their offsets. A relay that is repeated (the controller
 * killed mid-append, a new leader, two leaders for a moment) adds nothing
 * twice, since the backend compares what it holds already instead of storing
 * it again. Bounded: at most {@link MAX_BATCH_BYTES} are held per run (the log
 * stream is not read further while they wait for the backend), and a log the
 * backend has cut at its limit is not read further at all. The run's output
 * never reaches the controller's own log: errors name byte offsets and
 * statuses, never content.
 *
 * A run's end is reported only once its log is complete in the backend (see
 * `controller.ts`), so that a run the backend calls over has its whole log;
 * a relay that cannot finish (the backend or the kubelet unreachable for
 * {@link LOG_DRAIN_MAX_MS}) does not hold the run's end back for longer.
 */
import type { IncomingMessage } from 'node:http';
import { CONTAINER_WORKER } from '../../api/constants.js';
import { BackendError, RetryableBackendError, TerminalBackendError, type RunLogState } from '../../protocol/index.js';
import { untilAborted } from '../../runtime/abort.js';
import { httpStatus, isNotFound } from '../../runtime/errors.js';
import { PODS, type KubeClient, type Pod } from '../../runtime/k8s-client.js';
import type { Logger } from '../../runtime/log.js';
import { Slots } from '../../runtime/slots.js';
import type { BackendApi } from '../backend/connector.js';

/** Most bytes sent in one append (the backend takes up to 1 MiB per request). */
export const MAX_BATCH_BYTES = 512 * 1024;
/** Bytes printed are sent within this long, so that a follower sees them live. */
export const FLUSH_INTERVAL_MS = 250;
/** How long a run's end waits for its log to be complete in the backend, at most. */
export const LOG_DRAIN_MAX_MS = 30_000;
/**
 * Relays that may be starting a pass at once (the backend's log state, the
 * Pod, the log stream opened); streaming does not hold a slot. A controller
 * restarted with 1000 busy runs starts 1000 relays: all at once, their signed
 * backend calls (an RSA signature each) took 3.3 s of its CPU in its first
 * seconds and delayed the re-adoption of the workers' sessions by about 3.5 s
 * (`npm run bench -- --workers 1000 --phases scale,recovery`: 13.2-14.3 s,
 * 10.6 s with no relays).
 */
export const RELAY_START_SLOTS = 8;

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

/** Where a run's log is, and whose it is. */
export interface RelayTarget {
  readonly runId: string;
  readonly namespace: string;
  readonly podName: string;
  readonly podUid: string;
  /** The Worker's key, brought back to its reconcile when the relay ends. */
  readonly workerKey: string;
}

export interface LogRelayDeps {
  readonly client: KubeClient;
  /** The backend client of the run's pool; throws while it cannot be had. */
  readonly backendFor: (target: RelayTarget) => Promise<BackendApi>;
  readonly log: Logger;
  /** The relay of a run ended (its log is complete, or there is none to be had). */
  readonly onSettled: (target: RelayTarget) => void;
  readonly signal: AbortSignal;
  /**
   * Relays make their first pass once this resolves: a controller that
   * starts re-adopts the workers' sessions first, then catches up on logs
   * (the kubelet keeps them meanwhile; nothing is lost).
   */
  readonly begin?: Promise<void>;
}

/** The `worker` container's status in a Pod. */
function workerStatus(pod: Pod) {
  return pod.status?.containerStatuses?.find((s) => s.name === CONTAINER_WORKER);
}

/** Whether the `worker` container has started (it runs or ran): from then on it has a log. */
export function workerStarted(pod: Pod): boolean {
  const s = workerStatus(pod);
  return s?.state?.running !== undefined || (s?.state?.terminated !== undefined && (s.state.terminated.containerID ?? '') !== '');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Bytes read from the log, waiting to be appended; sends them in order, one append at a time. */
class Uploader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** The backend holds the log whole: read no further. */
  complete = false;

  constructor(
    private readonly backend: BackendApi,
    private readonly runId: string,
    /** Offset of the next byte to append. */
    public offset: number,
    private readonly signal: AbortSignal,
  ) {}

  get buffered(): number {
    return this.pendingBytes;
  }

  add(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), FLUSH_INTERVAL_MS);
  }

  /** Resolves once everything added so far is in the backend (or the log is complete there). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.chain = this.chain.then(() => this.send());
    return this.chain;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.pending = [];
    this.pendingBytes = 0;
  }

  private async send(): Promise<void> {
    while (this.pendingBytes > 0 && !this.complete) {
      const batch = this.take();
      let retry = RETRY_MIN_MS;
      let state: RunLogState;
      for (;;) {
        this.signal.throwIfAborted();
        try {
          state = await this.backend.appendLog(this.runId, this.offset, batch, { signal: this.signal });
          break;
        } catch (err) {
          // Unreachable or restarting: hold the bytes (and the stream) until the backend is back.
          if (!(err instanceof RetryableBackendError)) throw err;
          await sleep(retry, this.signal);
          retry = Math.min(retry * 2, RETRY_MAX_MS);
        }
      }
      this.offset += batch.length;
      if (state.complete) {
        this.complete = true;
        this.dispose();
      }
    }
  }

  private take(): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    while (this.pending.length > 0 && size < MAX_BATCH_BYTES) {
      const next = this.pending[0] as Buffer;
      const room = MAX_BATCH_BYTES - size;
      if (next.length <= room) {
        parts.push(next);
        size += next.length;
        this.pending.shift();
      } else {
        parts.push(next.subarray(0, room));
        size += room;
        this.pending[0] = next.subarray(room);
      }
    }
    this.pendingBytes -= size;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  }
}

/** A pass's end: 'again' (the container may print more), or how the relay ended. */
type PassOutcome = 'again' | { outcome: string; fields?: Record<string, unknown> };

interface Relay {
  readonly target: RelayTarget;
  readonly abort: AbortController;
  /** When this process started relaying the run. */
  readonly since: number;
  settled: boolean;
}

/** The log relays of this process's runs, one per run Pod. */
export class LogRelays {
  private readonly relays = new Map<string, Relay>();
  private readonly starts = new Slots(RELAY_START_SLOTS);

  constructor(private readonly deps: LogRelayDeps) {}

  /** Starts relaying the Pod's run log unless it is being (or was) relayed. */
  ensure(target: RelayTarget): void {
    if (this.deps.signal.aborted || this.relays.has(target.podUid)) return;
    const relay: Relay = { target, abort: new AbortController(), since: Date.now(), settled: false };
    this.relays.set(target.podUid, relay);
    void this.run(relay);
  }

  /**
   * Whether the run's end may be reported: its log is complete in the
   * backend, or relaying it has taken {@link LOG_DRAIN_MAX_MS} already
   * (then the wait's remaining time is undefined).
   */
  drained(podUid: string, now = Date.now()): { readonly done: boolean; readonly waitMs?: number } {
    const relay = this.relays.get(podUid);
    if (relay === undefined || relay.settled) return { done: true };
    const left = relay.since + LOG_DRAIN_MAX_MS - now;
    return left <= 0 ? { done: true } : { done: false, waitMs: left };
  }

  /** The Pod is gone: its relay stops. */
  forget(podUid: string): void {
    this.relays.get(podUid)?.abort.abort();
    this.relays.delete(podUid);
  }

  stopAll(): void {
    for (const r of this.relays.values()) r.abort.abort();
    this.relays.clear();
  }

  private settle(relay: Relay, outcome: string, fields: Record<string, unknown> = {}): void {
    if (relay.settled) return;
    relay.settled = true;
    this.deps.log.info('run log relayed', { runId: relay.target.runId, pod: relay.target.podName, namespace: relay.target.namespace, outcome, ...fields });
    this.deps.onSettled(relay.target);
  }

  private async run(relay: Relay): Promise<void> {
    const { target } = relay;
    const signal = AbortSignal.any([this.deps.signal, relay.abort.signal]);
    if (this.deps.begin !== undefined) {
      try {
        await untilAborted(this.deps.begin, signal);
      } catch {
        return;
      }
    }
    let retry = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        const release = await this.starts.acquire(signal);
        let outcome: PassOutcome;
        try {
          outcome = await this.pass(target, signal, release);
        } finally {
          release();
        }
        if (outcome !== 'again') {
          this.settle(relay, outcome.outcome, outcome.fields);
          return;
        }
        retry = RETRY_MIN_MS;
      } catch (err) {
        if (signal.aborted) return;
        if (isNotFound(err)) {
          this.settle(relay, 'the run Pod is gone');
          return;
        }
        if (err instanceof TerminalBackendError && err.status !== 409) {
          // The run unknown to the backend, the pool's key refused: asking again will not help.
          this.settle(relay, `the backend refused the log: ${err.message}`);
          return;
        }
        // Offsets, statuses and the backend's or API server's words only: never the run's output.
        const conflict = err instanceof BackendError && err.status === 409;
        this.deps.log.with({ namespace: target.namespace, pod: target.podName }).warn(conflict ? 'run log relay out of step with the backend; resuming from what it holds' : 'run log relay failed; retrying', {
          runId: target.runId,
          error: err instanceof Error ? err.message : String(err),
        });
        await sleep(conflict ? RETRY_MIN_MS : retry, signal);
        retry = Math.min(retry * 2, RETRY_MAX_MS);
      }
    }
  }

  /**
   * One read of the log: from where the backend is, to the end of the
   * stream. 'again' when the container may print more. `started` frees the
   * pass's start slot once it has nothing left but to wait or stream.
   */
  private async pass(target: RelayTarget, signal: AbortSignal, started: () => void): Promise<PassOutcome> {
    const backend = await this.deps.backendFor(target);
    const state = await backend.logState(target.runId, { signal });
    if (state.complete) return { outcome: state.truncated ? 'truncated by the backend' : 'complete', fields: { bytes: state.length } };
    const pod = await this.deps.client.get(PODS, target.namespace, target.podName);
    if (pod.metadata?.uid !== target.podUid) return { outcome: 'the run Pod is gone' };
    const status = workerStatus(pod);
    const terminated = status?.state?.terminated !== undefined;
    if (!workerStarted(pod)) {
      // Not started yet, or never will be (the Pod failed before it): nothing to relay.
      if (terminated || pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') return { outcome: 'the worker container never ran' };
      started();
      await sleep(1_000, signal);
      return 'again';
    }
    // A container that ended has its whole log on the node: read it once, to its end, then say it is complete.
    const read = await this.copy(backend, target, state.length, !terminated, signal, started);
    if (read.complete) return { outcome: 'truncated by the backend', fields: { bytes: read.offset } };
    if (!terminated) {
      // The follow ended: the container stopped (its status will say so) or the stream broke.
      await sleep(RETRY_MIN_MS, signal);
      return 'again';
    }
    const final = await backend.completeLog(target.runId, read.offset, { signal });
    if (read.short) return { outcome: 'complete, but the kubelet served less than the backend held (the log was rotated?)', fields: { bytes: final.length } };
    return { outcome: 'complete', fields: { bytes: final.length } };
  }

  /** Reads the container's log, skips the first `skip` bytes, appends the rest. */
  private async copy(backend: BackendApi, target: RelayTarget, skip: number, follow: boolean, signal: AbortSignal, started: () => void): Promise<{ offset: number; complete: boolean; short: boolean }> {
    const local = new AbortController();
    const both = AbortSignal.any([signal, local.signal]);
    let stream: IncomingMessage;
    try {
      stream = await this.deps.client.podLog(target.namespace, target.podName, { container: CONTAINER_WORKER, follow }, both);
    } catch (err) {
      // The kubelet has no log for a container that could not start.
      if (httpStatus(err) === 400 && !follow) return { offset: skip, complete: false, short: false };
      throw err;
    }
    started();
    const up = new Uploader(backend, target.runId, skip, both);
    let skipped = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        let bytes = chunk;
        if (skipped < skip) {
          const n = Math.min(skip - skipped, bytes.length);
          skipped += n;
          bytes = bytes.subarray(n);
          if (bytes.length === 0) continue;
        }
        up.add(bytes);
        // Backpressure: the stream is not read on while a batch waits for the backend.
        if (up.buffered >= MAX_BATCH_BYTES) await up.flush();
        if (up.complete) break;
      }
      await up.flush();
      return { offset: up.offset, complete: up.complete, short: skipped < skip };
    } finally {
      up.dispose();
      local.abort();
      stream.destroy();
    }
  }
}
