/**
 * The controller as a child process (so it can be SIGKILLed and its RSS read),
 * its output written straight to a file: piping it through the bench would
 * spend the bench's CPU on the controller's logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/cluster/binaries.js';

export interface ControllerOptions {
  kubeconfigPath: string;
  namespace: string;
  leaderElect: boolean;
  logFile: string;
  /** Directory for a V8 CPU profile (written when the process exits on SIGTERM). */
  cpuProfDir?: string;
  extraArgs?: readonly string[];
  /** Serve metrics over plain HTTP on this loopback port (default: no metrics). */
  metricsPort?: number;
  /** Run this compiled main.js with plain node instead of src/controller/cli/main.ts through tsx. */
  compiledMain?: string;
  /** Directory for V8 heap snapshots, taken on {@link ControllerProcess.heapSnapshot}. */
  heapSnapshotDir?: string;
}

export class ControllerProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<void>;
  private offset = 0;
  private readonly seen: Record<string, unknown>[] = [];

  constructor(readonly options: ControllerOptions) {
    const fd = openSync(options.logFile, 'a');
    const nodeArgs = [
      ...(options.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`]),
      ...(options.heapSnapshotDir === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${options.heapSnapshotDir}`]),
    ];
    const args = [
      `--namespaces=${options.namespace}`,
      '--health-probe-bind-address=0',
      ...(options.metricsPort === undefined ? ['--metrics-bind-address=0'] : [`--metrics-bind-address=127.0.0.1:${options.metricsPort}`, '--metrics-secure=false']),
      ...(options.leaderElect ? ['--leader-elect', `--leader-election-namespace=${options.namespace}`] : []),
      ...(options.extraArgs ?? []),
    ];
    const entry = options.compiledMain === undefined ? ['--import', 'tsx', join(repoRoot, 'src', 'controller', 'cli', 'main.ts')] : [options.compiledMain];
    this.child = spawn(process.execPath, [...nodeArgs, ...entry, ...args], {
      cwd: repoRoot,
      env: { ...process.env, KUBECONFIG: options.kubeconfigPath },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('controller did not start');
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** JSON log records written since the last call, accumulated. */
  records(): Record<string, unknown>[] {
    let text: string;
    try {
      text = readFileSync(this.options.logFile, 'utf8');
    } catch {
      return this.seen;
    }
    const fresh = text.slice(this.offset);
    const end = fresh.lastIndexOf('\n');
    if (end < 0) return this.seen;
    this.offset += end + 1;
    for (const line of fresh.slice(0, end).split('\n')) {
      if (line.startsWith('{')) {
        try {
          this.seen.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a partial or foreign line
        }
      }
    }
    return this.seen;
  }

  /** The first log record whose `msg` is `msg`, once it appears. */
  async waitForLog(msg: string, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.records().find((r) => r.msg === msg);
      if (found !== undefined) return found;
      if (!this.running) throw new Error(`controller exited before logging "${msg}"; see ${this.options.logFile}`);
      if (Date.now() > deadline) throw new Error(`controller did not log "${msg}" within ${timeoutMs} ms; see ${this.options.logFile}`);
      await sleep(50);
    }
  }

  /**
   * Has the process write a V8 heap snapshot (SIGUSR2, with heapSnapshotDir)
   * and resolves with its path once the file stops growing. The process is
   * frozen while it writes (seconds at a thousand workers).
   */
  async heapSnapshot(timeoutMs = 300_000): Promise<string> {
    const dir = this.options.heapSnapshotDir;
    if (dir === undefined) throw new Error('heapSnapshot needs heapSnapshotDir');
    const before = new Set(readdirSync(dir));
    this.child.kill('SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    for (;;) {
      await sleep(1000);
      const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
      if (file !== undefined) {
        const size = statSync(join(dir, file)).size;
        if (size > 0 && size === last) return join(dir, file);
        last = size;
      }
      if (Date.now() > deadline) throw new Error(`no heap snapshot in ${dir} within ${timeoutMs} ms`);
    }
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }

  /** SIGTERM (so a CPU profile is written), SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
