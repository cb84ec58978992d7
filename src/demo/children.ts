/**
 * The demo's own child processes (the backend and the controller): each in
 * its own process group with its output in a log file, so that `--keep` can
 * exit and leave them running, and so that a Ctrl-C in the terminal reaches
 * the demo only, which then stops them in order.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, tailOf } from '../cluster/processes.js';

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
}

export function startChild(name: string, command: string, args: readonly string[], opts: { cwd: string; logFile: string; env: NodeJS.ProcessEnv }): Child {
  const fd = openSync(opts.logFile, 'a');
  try {
    const child = spawn(command, [...args], { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new Error(`could not start the ${name} (${command})`);
    child.unref();
    return { name, pid: child.pid, logFile: opts.logFile };
  } finally {
    closeSync(fd);
  }
}

function exitedError(child: Child, waitingFor: string): Error {
  return new Error(`the ${child.name} exited while waiting for ${waitingFor}; last lines of ${child.logFile}:\n${tailOf(child.logFile, 30)}`);
}

/** Waits for a line of the child's log that matches `pattern`; returns the match. */
export async function waitForLogLine(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(child.logFile, 'utf8');
    } catch {
      // not written yet
    }
    const match = pattern.exec(text);
    if (match !== null) return match;
    if (!isRunning(child.pid)) throw exitedError(child, `${pattern}`);
    if (Date.now() > deadline) throw new Error(`the ${child.name} did not log ${pattern} within ${timeoutMs / 1000} s; see ${child.logFile}:\n${tailOf(child.logFile, 30)}`);
    await sleep(200);
  }
}

export function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Waits for `url` to answer 200 while the child runs. */
export async function waitForHttpOk(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (!isRunning(child.pid)) throw exitedError(child, `${url} to answer 200`);
    try {
      const res = await httpGet(url);
      if (res.status === 200) return;
      last = `${res.status} ${res.body.trim()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`the ${child.name} was not ready within ${timeoutMs / 1000} s (${url}: ${last}); see ${child.logFile}:\n${tailOf(child.logFile, 30)}`);
    await sleep(250);
  }
}

/** True when `pid` still runs a command line that contains `marker` (not a recycled pid). */
export function runsWith(pid: number, marker: string): boolean {
  if (!isRunning(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}
