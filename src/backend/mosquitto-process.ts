/**
 * A mosquitto child process configured for the backend (writeMosquittoConfig),
 * for the tests and the bench: the broker production setups use, in place of
 * the embedded one.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HOST_PIECES } from '../cluster/host-packages.js';
import { freePort } from './broker.js';
import { writeMosquittoConfig } from './mosquitto.js';

/** Debian installs mosquitto into /usr/sbin, which a user's PATH may lack. */
const MOSQUITTO = existsSync(HOST_PIECES.mosquitto.files[0]) ? HOST_PIECES.mosquitto.files[0] : 'mosquitto';

/** Why mosquitto cannot be run here, or undefined when it can. */
export function mosquittoMissing(): string | undefined {
  const probe = spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' });
  return probe.error ? 'mosquitto is not installed: apt-get install -y mosquitto' : undefined;
}

export interface MosquittoProcess {
  /** What to pass as the backend's `externalBroker`. */
  readonly brokerUrl: string;
  /** The broker's revocation list: the backend's `crlFile`. */
  readonly crlFile: string;
  /** Everything mosquitto printed (its connection log). */
  readonly output: string[];
  readonly pid: number | undefined;
  /** Makes mosquitto read its CRL again (the backend's `onCrlWritten`). */
  reload(): void;
  stop(): Promise<void>;
}

/** Writes the configuration into `dir` for the backend of `dataDir`, starts mosquitto on a free loopback port and waits until it runs. */
export async function startMosquitto(opts: { dataDir: string; dir: string }): Promise<MosquittoProcess> {
  const missing = mosquittoMissing();
  if (missing !== undefined) throw new Error(missing);
  const { confPath, brokerUrl } = await writeMosquittoConfig({
    dataDir: opts.dataDir,
    outDir: opts.dir,
    port: await freePort(),
    // As root, mosquitto would switch to the `mosquitto` user, who cannot read a 0700 temp dir.
    runAsUser: process.getuid?.() === 0 ? 'root' : undefined,
  });
  const proc = spawn(MOSQUITTO, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  proc.stdout.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr.on('data', (d: Buffer) => output.push(d.toString()));
  const deadline = Date.now() + 30_000;
  while (!output.join('').includes(' running')) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited (${proc.exitCode}): ${output.join('')}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`mosquitto did not start within 30 s: ${output.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    brokerUrl,
    crlFile: path.join(opts.dir, 'crl.pem'),
    output,
    pid: proc.pid,
    reload: () => {
      if (proc.exitCode === null) proc.kill('SIGHUP');
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
