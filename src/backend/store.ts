import { open, readFile, rename, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { ScheduleMessage, ScriptRef } from '../protocol/messages.js';
import type { LogMeta } from './run-files.js';

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
 * The backend's state, in memory, persisted as one JSON file.
 *
 * Writes are atomic (temp file, fsync, rename, fsync of the directory) and
 * coalesced: callers change `data` and then `await persist()`, which resolves
 * once a write that began after the call is on disk. Many concurrent changes
 * therefore cost one write, and nothing is acknowledged before it is durable.
 */
export class StateStore {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;

  private constructor(
    readonly file: string,
    readonly data: StateData,
  ) {}

  static async open(dataDir: string): Promise<StateStore> {
    await mkdir(dataDir, { recursive: true });
    const file = path.join(dataDir, 'state.json');
    let data = empty();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<StateData>;
      if (parsed.version !== 1) throw new Error(`${file}: unsupported state version ${String(parsed.version)}`);
      data = { ...empty(), ...parsed } as StateData;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return new StateStore(file, data);
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

  private async write(): Promise<void> {
    const now = Date.now();
    for (const [k, exp] of Object.entries(this.data.nonces)) if (exp <= now) delete this.data.nonces[k];
    for (const [k, r] of Object.entries(this.data.revoked)) if (Date.parse(r.expiresAt) <= now) delete this.data.revoked[k];
    const text = JSON.stringify(this.data);
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    const dir = await open(path.dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
