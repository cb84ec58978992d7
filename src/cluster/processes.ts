import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sleepSync } from './commands.js';

/**
 * Starts a program in its own process group with its output appended to a
 * log file. Its own group means a terminal's Ctrl-C does not reach it half-way
 * through a teardown, and killing the group also reaches anything it forked.
 */
export function spawnInOwnGroup(
  command: string,
  args: readonly string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): ChildProcess & { pid: number } {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env });
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    // Callers watch the pid, not the handle: `cluster:up` must be able to exit
    // and leave the process running.
    child.unref();
    return child as ChildProcess & { pid: number };
  } finally {
    closeSync(fd);
  }
}

/**
 * True while the process exists and is not a zombie. A zombie still answers
 * kill(pid, 0), and a detached process whose parent exited can stay one for a
 * while if the container's init does not reap promptly.
 */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** The command line of a running process, to tell ours from a recycled pid. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part !== '');
  } catch {
    return [];
  }
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone: nothing left to stop.
  }
}

/** SIGTERM to the group, then SIGKILL if its leader has not exited within the grace period. */
export async function stopGroup(pgid: number, graceMs = 10_000): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isRunning(pgid) && Date.now() < deadline) await sleep(100);
  if (isRunning(pgid)) {
    signalGroup(pgid, 'SIGKILL');
    while (isRunning(pgid)) await sleep(50);
  }
}

/** stopGroup for exit handlers and other places where nothing asynchronous runs. */
export function stopGroupSync(pgid: number, graceMs = 10_000): void {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isRunning(pgid) && Date.now() < deadline) sleepSync(100);
  if (isRunning(pgid)) {
    signalGroup(pgid, 'SIGKILL');
    const killDeadline = Date.now() + 5_000;
    while (isRunning(pgid) && Date.now() < killDeadline) sleepSync(50);
  }
}

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A tiny shell that waits for `watchedPid` to exit and then runs `command`
 * (a cluster's teardown, which knows the order things must stop in and what
 * to restore on the host). Runs in its own group, so it outlives the watched
 * process however that ends.
 */
export function spawnTeardownWatchdog(watchedPid: number, command: readonly string[], cwd: string, logFile: string): ChildProcess & { pid: number } {
  const script = [`while kill -0 ${watchedPid} 2>/dev/null; do sleep 1; done`, `cd ${shellQuote(cwd)} && exec ${command.map(shellQuote).join(' ')}`].join('\n');
  return spawnInOwnGroup('sh', ['-c', script], logFile);
}

/**
 * A tiny shell that notices within a second that `watchedPid` has exited and
 * then stops the given groups, in order: the safety net for a test runner
 * killed with SIGKILL or crashing, when no exit handler of ours gets to run.
 */
export function spawnWatchdog(watchedPid: number, groups: readonly number[], logFile: string): ChildProcess & { pid: number } {
  const targets = groups.map((g) => `-${g}`).join(' ');
  // The API server is stopped first and on its own: once etcd is gone it
  // cannot finish a graceful shutdown and would wait forever.
  const [first, ...rest] = groups;
  const script = [
    `while kill -0 ${watchedPid} 2>/dev/null; do sleep 1; done`,
    ...(first !== undefined ? [`kill -TERM -${first} 2>/dev/null`, 'i=0', `while kill -0 -${first} 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done`] : []),
    rest.length > 0 ? `kill -TERM ${rest.map((g) => `-${g}`).join(' ')} 2>/dev/null` : ':',
    'sleep 5',
    `kill -KILL ${targets} 2>/dev/null`,
    'exit 0',
  ].join('\n');
  return spawnInOwnGroup('sh', ['-c', script], logFile);
}

/** Last lines of a log file, for error messages that explain a failed start. */
export function tailOf(logFile: string, lines = 25): string {
  try {
    return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
