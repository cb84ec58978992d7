import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning } from './processes.js';

/**
 * Runs `fn` while holding `<dir>/.lock`, so two `cluster:up` (or an up and a
 * down) started together do not both start a control plane. A lock left by a
 * process that died is taken over.
 */
export async function withDirectoryLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 300_000): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockFile = join(dir, '.lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readLockHolder(lockFile), 10);
      // An empty file is a lock being written right now, unless it is old.
      const abandoned = Number.isInteger(holder) ? !isRunning(holder) : Date.now() - mtimeOf(lockFile) > 5_000;
      if (abandoned) {
        unlinkQuietly(lockFile);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lockFile} is held by process ${holder}`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    unlinkQuietly(lockFile);
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
