import { execFile, execFileSync, type ExecFileSyncOptions } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

/** The usual root PATH: ip, nft, mount, sysctl and apt-get live in sbin directories that a user's PATH may lack. */
export function withSbinPath(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const dirs = (env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (!dirs.includes(d)) dirs.push(d);
  return { ...env, PATH: dirs.join(':') };
}

/** Runs a program to completion; never throws for a non-zero exit (the caller decides), only when it cannot start. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      { env: withSbinPath(options.env), cwd: options.cwd, maxBuffer: 256 * 1024 * 1024, timeout: options.timeoutMs ?? 0 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`${file} ${args.join(' ')}: ${error.message}`));
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Like runCommand, but a non-zero exit throws with the program's own message. */
export async function runOk(file: string, args: readonly string[], options: CommandOptions = {}): Promise<string> {
  const res = await runCommand(file, args, options);
  if (res.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${res.code}: ${(res.stderr || res.stdout).trim()}`);
  return res.stdout;
}

/**
 * The synchronous form, for teardown paths that run in process 'exit'
 * handlers, where nothing asynchronous gets to run.
 */
export function runCommandSync(file: string, args: readonly string[], options: CommandOptions = {}): CommandResult {
  const opts: ExecFileSyncOptions = {
    env: withSbinPath(options.env),
    cwd: options.cwd,
    input: options.input,
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  };
  try {
    const stdout = execFileSync(file, [...args], opts);
    return { code: 0, stdout: stdout.toString(), stderr: '' };
  } catch (error) {
    const e = error as { status?: number | null; stdout?: Buffer | string; stderr?: Buffer | string; message: string };
    if (typeof e.status !== 'number') return { code: -1, stdout: '', stderr: e.message };
    return { code: e.status, stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? '') };
  }
}

/** Blocks the thread for `ms` (teardown in exit handlers only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
