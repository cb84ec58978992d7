import { open, readFile, rename, mkdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { ScheduleMessage, ScriptRef } from '../protocol/messages.js';
import type { LogMeta } from './run-files.js';
import { diffState, replayJournal, writtenStateOf, type WrittenState } from './state-journal.js';

/** Run lifecycle as the API shows it. */
export type RunState = 'queued' | 'scheduled' | 'preparing' | 'running' | 'finished' | 'failed' | 'stopped';
export const TERMINAL_RUN_STATES: ReadonlySet<RunState> = new Set(['finished', 'failed', 'stopped']);
/** States in which a run occupies its worker. */
export const ACTIVE_RUN_STATES: ReadonlySet<RunState> = new Set(['scheduled', 'preparing', 'running']);

export interface PoolRecord {
  id: string;
  name: string;
  /** SPKI PEM; the private key is handed to the user once and never stored. */
  publicKeyPem: string;
  createdAt: string;
}

export interface WorkerRecord {
  id: string;
  poolId: string;
  drained: boolean;
  registeredAt: string;
  /** Serial (hex) of the one certificate of this worker that brokers accept: the latest issued. */
  certSerial: string;
  /** When that certificate expires (ISO). */
  certNotAfter?: string;
}

/** A certificate that must no longer be accepted, until it would have expired anyway. */
export interface RevocationRecord {
  revokedAt: string;
  /** The certificate's notAfter (ISO): after it the entry leaves the CRL. */
  expiresAt: string;
  workerId: string;
}

export interface RunRecord {
  id: string;
  poolId: string;
  state: RunState;
  workerId: string | null;
  reason: string | null;
  exitCode: number | null;
  runnerImage: string;
  launcherImage: string;
  env: Record<string, string>;
  timeouts: ScheduleMessage['timeouts'];
  /** The run's script (its text is in `runs/<id>/script`). */
  script?: ScriptRef;
  /** What the log file alone cannot say (see `run-files.ts`). */
  log?: LogMeta;
  stopRequested: boolean;
  /** Times the assigned worker answered its schedule with `reject`. */
  rejections?: number;
  createdAt: string;
  updatedAt: string;
}

/** Everything that must survive a restart. */
export interface StateData {
  version: 1;
  pools: Record<string, PoolRecord>;
  workers: Record<string, WorkerRecord>;
  runs: Record<string, RunRecord>;
  /** `<poolId>/<nonce>` -> expiry (ms); replay protection across restarts. */
  nonces: Record<string, number>;
  /** Serial (normalized hex) -> revocation; the CRL is made from it. */
  revoked: Record<string, RevocationRecord>;
  /** Deregistered worker id -> its pool: an id is never registered in another pool again. */
  retiredWorkers: Record<string, string>;
  /** Number of the last CRL written (monotonic). */
  crlNumber: number;
}

function empty(): StateData {
  return { version: 1, pools: {}, workers: {}, runs: {}, nonces: {}, revoked: {}, retiredWorkers: {}, crlNumber: 0 };
}

/**
 * The backend's state, in memory, persisted as a snapshot (`state.json`) and
 * a journal of the changes since (`state.journal`, see state-journal.ts).
 *
 * Callers change `data` and then `await persist()`, which resolves once a
 * write that began after the call is durable: one journal line with the
 * records that differ from what is on disk, appended and fdatasync'd. Writes
 * are coalesced (many concurrent changes cost one), and nothing is
 * acknowledged before it is durable. Once the journal outgrows the snapshot
 * (and at every open, which also drops a torn last line), the snapshot is
 * rewritten atomically (temp file, fsync, rename, fsync of the directory) and
 * the journal emptied; the snapshot records the last journal entry it holds,
 * so a crash between the two replays nothing twice.
 */
export class StateStore {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private written: WrittenState;
  private journal: FileHandle | undefined;
  private journalBytes = 0;
  private snapshotBytes = 0;

  private constructor(
    readonly file: string,
    readonly journalFile: string,
    readonly data: StateData,
    private seq: number,
  ) {
    this.written = writtenStateOf(data);
  }

  static async open(dataDir: string): Promise<StateStore> {
    await mkdir(dataDir, { recursive: true });
    const file = path.join(dataDir, 'state.json');
    const journalFile = path.join(dataDir, 'state.journal');
    let data = empty();
    let seq = 0;
    let snapshotFound = false;
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<StateData> & { journalSeq?: number };
      if (parsed.version !== 1) throw new Error(`${file}: unsupported state version ${String(parsed.version)}`);
      const { journalSeq, ...rest } = parsed;
      data = { ...empty(), ...rest } as StateData;
      seq = journalSeq ?? 0;
      snapshotFound = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let journalText = '';
    try {
      journalText = await readFile(journalFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    seq = replayJournal(data, journalText, seq, journalFile).lastSeq;
    const store = new StateStore(file, journalFile, data, seq);
    store.journal = await open(journalFile, 'a', 0o600);
    // The journal's own directory entry must be durable before anything appended to it counts.
    await syncDirectory(dataDir);
    // Whatever was replayed (or torn) goes into a fresh snapshot, and the journal starts empty.
    if (journalText !== '' || !snapshotFound) await store.snapshot();
    return store;
  }

  /** Resolves when the current content (and anything changed before the call) is on disk. */
  persist(): Promise<void> {
    if (this.pending) return this.pending;
    const previous = this.writing ?? Promise.resolve();
    // `then` runs asynchronously, so `pending` is set before the write starts;
    // changes made after the write took its snapshot go to the next one.
    const next = previous
      .catch(() => undefined)
      .then(() => {
        this.pending = undefined;
        const w = this.write();
        this.writing = w;
        return w.finally(() => {
          if (this.writing === w) this.writing = undefined;
        });
      });
    this.pending = next;
    return next;
  }

  /** Lets go of the journal once the last write is done; a later persist() writes a snapshot. */
  async close(): Promise<void> {
    await this.persist();
    const journal = this.journal;
    this.journal = undefined;
    await journal?.close();
  }

  private async write(): Promise<void> {
    const now = Date.now();
    for (const [k, exp] of Object.entries(this.data.nonces)) if (exp <= now) delete this.data.nonces[k];
    for (const [k, r] of Object.entries(this.data.revoked)) if (Date.parse(r.expiresAt) <= now) delete this.data.revoked[k];
    const diff = diffState(this.data, this.written, this.seq + 1);
    if (diff === undefined) return;
    const bytes = Buffer.byteLength(diff.line);
    if (this.journal === undefined || this.journalBytes + bytes > Math.max(this.snapshotBytes, MIN_JOURNAL_BYTES)) {
      await this.snapshot();
      return;
    }
    await this.journal.write(diff.line);
    await this.journal.datasync();
    this.seq++;
    this.journalBytes += bytes;
    diff.apply();
  }

  /** Rewrites the snapshot with everything, then empties the journal. */
  private async snapshot(): Promise<void> {
    const written = writtenStateOf(this.data);
    const text = JSON.stringify({ ...this.data, journalSeq: this.seq });
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    await syncDirectory(path.dirname(this.file));
    this.written = written;
    this.snapshotBytes = Buffer.byteLength(text);
    if (this.journal !== undefined) {
      await this.journal.truncate(0);
      await this.journal.sync();
      this.journalBytes = 0;
    }
  }
}

/** The journal is rewritten into the snapshot once it is bigger than the snapshot, and not before this. */
const MIN_JOURNAL_BYTES = 1024 * 1024;


async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
