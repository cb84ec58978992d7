import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sleepSync } from './commands.js';
import { isRunning } from './processes.js';

/**
 * Runs `fn` while holding `<dir>/.lock`, so two `cluster:up` (or an up and a
 * down) started together do not both start a control plane. A lock left by a
 * process that died is taken over.
 */
export async function withDirectoryLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return withFileLock(join(dir, '.lock'), fn, timeoutMs);
}

/**
 * Runs `fn` while holding `lockFile` (created for the duration, removed
 * afterwards, so nothing is left behind); its directory is created if missing.
 */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  mkdirSync(dirname(lockFile), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holder = tryAcquire(lockFile);
    if (holder === undefined) break;
    if (Date.now() > deadline) throw new Error(`${lockFile} is held by process ${holder}`);
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    unlinkQuietly(lockFile);
  }
}

/** withFileLock for teardown in exit handlers, where nothing asynchronous runs. */
export function withFileLockSync<T>(lockFile: string, fn: () => T, timeoutMs = 60_000): T {
  mkdirSync(dirname(lockFile), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holder = tryAcquire(lockFile);
    if (holder === undefined) break;
    if (Date.now() > deadline) throw new Error(`${lockFile} is held by process ${holder}`);
    sleepSync(100);
  }
  try {
    return fn();
  } finally {
    unlinkQuietly(lockFile);
  }
}

/** One attempt: undefined when the lock is now ours, else its holder. A lock whose holder died is removed and retried. */
function tryAcquire(lockFile: string): string | undefined {
  for (;;) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const text = readLockHolder(lockFile);
      const holder = Number.parseInt(text, 10);
      // An empty file is a lock being written right now, unless it is old.
      const abandoned = Number.isInteger(holder) ? !isRunning(holder) : Date.now() - mtimeOf(lockFile) > 5_000;
      if (!abandoned) return text;
      unlinkQuietly(lockFile);
    }
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function readLockHolder(lockFile: string): string {
  try {
    return readFileSync(lockFile, 'utf8');
  } catch {
    return '';
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Someone else removed it first.
  }
}
