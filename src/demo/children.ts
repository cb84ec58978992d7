/**
 * The demo's own child processes (the backend, and `kubectl port-forward`
 * for a moment): the backend in its own process group with its output in a
 * log file, so that `--keep` can exit and leave it running, and so that a
 * Ctrl-C in the terminal reaches the demo only, which then stops it in order.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
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

/** GET over HTTPS accepting any certificate (the controller's metrics certificate is self-signed), with a bearer token. */
export function httpsGetInsecure(url: string, token?: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { agent: false, timeout: timeoutMs, rejectUnauthorized: false, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A command that runs while the demo needs it (kubectl port-forward); its output so far on request. */
export function startBackground(command: string, args: readonly string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): { output(): string; stop(): void } {
  const child = spawn(command, [...args], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  return { output: () => text, stop: () => void child.kill('SIGTERM') };
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
