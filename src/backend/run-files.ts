/**
 * What the backend keeps of a run on disk beside `state.json`: its script and
 * its log (the `worker` container's output, as the worker relays it), one
 * directory per run: `<data-dir>/runs/<run id>/{script,log}`.
 *
 * The log is append-only and written at byte offsets, so that a relay that is
 * repeated (a controller killed mid-append, a new leader, two leaders for a
 * moment) adds nothing twice: bytes the backend holds already are compared,
 * not stored again, and a gap is refused. Every append is on disk (fsync)
 * before it is acknowledged, so a backend restart loses nothing it said it
 * had. A log longer than the limit is cut there and a marker line says so;
 * a cut log is complete (nothing more is stored).
 */
import { EventEmitter } from 'node:events';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RunLogState } from '../protocol/registration.js';

/** What `state.json` keeps of a run's log: only what the file cannot say. */
export interface LogMeta {
  /** No more bytes will be stored. */
  complete?: boolean;
  /** Cut at the limit; `bytes` is then the output stored (the file also holds the marker). */
  truncated?: boolean;
  bytes?: number;
}

/** Default per-run log limit: 10 MiB. */
export const DEFAULT_MAX_LOG_BYTES = 10 * 1024 * 1024;

/** Why an append or a completion cannot be taken; the API answers 409 with the message. */
export class LogConflict extends Error {}

/** The line that ends a cut log. */
export function truncationMarker(limit: number, lastByte: number | undefined): Buffer {
  const lead = lastByte === undefined || lastByte === 0x0a ? '' : '\n';
  return Buffer.from(`${lead}[log truncated: this run printed more than ${limit} bytes, the backend's limit per run (--max-log-bytes); the rest of its output was not stored]\n`, 'utf8');
}

export class RunFiles {
  /** Bytes of output stored per run, once read from disk. */
  private readonly lengths = new Map<string, number>();
  /** One operation at a time per run's log. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly changes = new EventEmitter();
  /** Changes per run so far, so that a follower misses none between a read and its wait. */
  private readonly versions = new Map<string, number>();

  /**
   * @param persist writes `state.json` (where each run's {@link LogMeta} lives); called
   *   before a change of the meta is acted upon, so that a crash cannot leave a
   *   file and its meta disagreeing.
   */
  constructor(
    private readonly dir: string,
    readonly limit: number,
    private readonly persist: () => Promise<void>,
  ) {
    this.changes.setMaxListeners(0);
  }

  private runDir(runId: string): string {
    return path.join(this.dir, 'runs', runId);
  }

  logPath(runId: string): string {
    return path.join(this.runDir(runId), 'log');
  }

  /** Writes a run's script (temp file, fsync, rename) before the run is acknowledged. */
  async writeScript(runId: string, script: Buffer): Promise<void> {
    await mkdir(this.runDir(runId), { recursive: true, mode: 0o700 });
    const file = path.join(this.runDir(runId), 'script');
    const tmp = `${file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(script);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  readScript(runId: string): Promise<Buffer> {
    return readFile(path.join(this.runDir(runId), 'script'));
  }

  /** Bytes of output stored (the marker of a cut log not counted). Call with the run's lock held. */
  private async length(runId: string, meta: LogMeta): Promise<number> {
    const known = this.lengths.get(runId);
    if (known !== undefined) return known;
    let size = 0;
    try {
      size = (await stat(this.logPath(runId))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (meta.truncated === true && meta.bytes !== undefined) {
      // Cut, and stopped before the marker was written: write it now.
      if (size === meta.bytes) await this.appendSynced(runId, truncationMarker(this.limit, size > 0 ? await this.byteAt(runId, size - 1) : undefined));
      size = meta.bytes;
    }
    this.lengths.set(runId, size);
    return size;
  }

  private async byteAt(runId: string, position: number): Promise<number | undefined> {
    const fh = await open(this.logPath(runId), 'r');
    try {
      const one = Buffer.alloc(1);
      const { bytesRead } = await fh.read(one, 0, 1, position);
      return bytesRead === 1 ? one[0] : undefined;
    } finally {
      await fh.close();
    }
  }

  private async appendSynced(runId: string, bytes: Buffer): Promise<void> {
    await mkdir(this.runDir(runId), { recursive: true, mode: 0o700 });
    const fh = await open(this.logPath(runId), 'a', 0o600);
    try {
      await fh.appendFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  private async stateLocked(runId: string, meta: LogMeta): Promise<RunLogState> {
    return { length: await this.length(runId, meta), complete: meta.complete === true, truncated: meta.truncated === true, limit: this.limit };
  }

  state(runId: string, meta: LogMeta): Promise<RunLogState> {
    return this.exclusive(runId, () => this.stateLocked(runId, meta));
  }

  private exclusive<T>(runId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(runId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.locks.set(runId, next);
    void next.finally(() => {
      if (this.locks.get(runId) === next) this.locks.delete(runId);
    }).catch(() => undefined);
    return next;
  }

  /**
   * Stores `bytes` as the log's content from byte `offset` on: what the
   * backend holds already is compared (a difference is a {@link LogConflict}),
   * the rest appended, up to the limit. `meta` changes in place when the log
   * is cut.
   */
  append(runId: string, offset: number, bytes: Buffer, meta: LogMeta): Promise<RunLogState> {
    return this.exclusive(runId, async () => {
      const length = await this.length(runId, meta);
      if (offset > length) throw new LogConflict(`the log of run ${runId} holds ${length} bytes; an append at byte ${offset} would leave a gap`);
      const overlap = Math.min(length - offset, bytes.length);
      if (overlap > 0) {
        const held = Buffer.alloc(overlap);
        const fh = await open(this.logPath(runId), 'r');
        try {
          await fh.read(held, 0, overlap, offset);
        } finally {
          await fh.close();
        }
        if (!held.equals(bytes.subarray(0, overlap))) {
          throw new LogConflict(`bytes ${offset}-${offset + overlap - 1} of the log of run ${runId} differ from what the backend holds`);
        }
      }
      const rest = bytes.subarray(overlap);
      if (rest.length === 0) return this.stateLocked(runId, meta);
      // A cut log takes no more and says so: the relay then stops reading the run's output.
      if (meta.truncated === true) return this.stateLocked(runId, meta);
      if (meta.complete === true) throw new LogConflict(`the log of run ${runId} is complete at ${length} bytes; nothing more is stored`);
      const room = this.limit - length;
      if (rest.length <= room) {
        await this.appendSynced(runId, rest);
        this.lengths.set(runId, length + rest.length);
      } else {
        const kept = rest.subarray(0, room);
        if (kept.length > 0) await this.appendSynced(runId, kept);
        this.lengths.set(runId, this.limit);
        // The meta first: after a crash here, the file's length alone would pass the marker off as output.
        meta.truncated = true;
        meta.complete = true;
        meta.bytes = this.limit;
        await this.persist();
        const last = kept.length > 0 ? kept[kept.length - 1] : length > 0 ? await this.byteAt(runId, length - 1) : undefined;
        await this.appendSynced(runId, truncationMarker(this.limit, last));
      }
      this.notify(runId);
      return this.stateLocked(runId, meta);
    });
  }

  /** Marks the log complete at `length` bytes (`meta` changes in place and is persisted). */
  complete(runId: string, length: number, meta: LogMeta): Promise<RunLogState> {
    return this.exclusive(runId, async () => {
      const held = await this.length(runId, meta);
      if (meta.complete !== true) {
        if (length !== held) throw new LogConflict(`the log of run ${runId} holds ${held} bytes, not ${length}: append the rest first`);
        meta.complete = true;
        await this.persist();
      }
      this.notify(runId);
      return this.stateLocked(runId, meta);
    });
  }

  /** Tells followers of a run's log to look again (its run ended, say). */
  notify(runId: string): void {
    this.versions.set(runId, this.version(runId) + 1);
    this.changes.emit(runId);
  }

  /** How many changes the run's log (or its run) has seen: pass it to {@link changedSince}. */
  version(runId: string): number {
    return this.versions.get(runId) ?? 0;
  }

  /** Resolves once the run's log (or its run) changed after `version` was read, or when `signal` fires. */
  changedSince(runId: string, version: number, signal: AbortSignal): Promise<void> {
    if (this.version(runId) !== version || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.changes.off(runId, done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.changes.on(runId, done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
