/**
 * `npm run backend -- --data-dir <dir> [--port N] [--broker-port N] [--external-broker URL]
 *    [--host ADDR] [--public-host NAME] [--log-level debug|info|warn|error]
 *    [--worker-cert-lifetime 720h] [--crl-file PATH] [--crl-reload-command CMD]
 *    [--max-log-bytes 10Mi] [--default-runner-image REF] [--default-launcher-image REF] [--protocol-version 1|2]`
 * `npm run backend -- mosquitto-config --data-dir <dir> --out <dir> [--port N] [--host ADDR] [--name HOST]... [--user USER]`
 * `npm run backend -- <pools|runs|logs|...> ...`: the command-line client (client/cli.ts).
 *
 * Prints exactly one line on stdout when ready:
 *   backend ready: api=<url> broker=<url>
 * Logs are JSON lines on stderr.
 */
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { parseDuration } from '../runtime/duration.js';
import { writeMosquittoConfig } from './mosquitto.js';
import { startBackend } from './server.js';
import type { LogLevel } from './log.js';
import { CLIENT_COMMANDS, runClient } from './client/cli.js';
import { parseByteSize } from './sizes.js';
import { PROTOCOL_VERSIONS } from '../protocol/version.js';

const USAGE =
  `usage: npm run backend -- --data-dir <dir> [--port 9443] [--broker-port 8883] [--external-broker mqtts://host:port]\n` +
  `                      [--host 127.0.0.1] [--public-host <name>] [--log-level info]\n` +
  `                      [--worker-cert-lifetime 720h] [--crl-file <path>] [--crl-reload-command <shell command>]\n` +
  `                      [--max-log-bytes 10Mi] [--default-runner-image <ref>] [--default-launcher-image <ref>]\n` +
  `                      [--protocol-version 2]   (1: speak only version 1, whose workers have RSA keys)\n` +
  `       npm run backend -- mosquitto-config --data-dir <dir> --out <dir> [--port 8883] [--host 127.0.0.1] [--name <dns or ip>]... [--user <unix user>]\n` +
  `       npm run -s backend -- <command> ...   the command-line client: npm run -s backend -- help\n`;

function usage(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function port(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) usage(`${flag} must be a port number 0-65535, got ${JSON.stringify(v)}`);
  return n;
}

function runReload(command: string): Promise<void> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', command], { timeout: 30_000 }, (err, _out, stderr) => {
      if (err) process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'CRL reload command failed', error: err.message, stderr: stderr.slice(0, 500) }) + '\n');
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const first = process.argv[2];
  if (first !== undefined && CLIENT_COMMANDS.includes(first)) {
    process.exitCode = await runClient(process.argv.slice(2));
    return;
  }
  if (first === '--help' || first === '-h') {
    // The server's flags, then the client's commands: a person asking does not yet know which one they want.
    process.stdout.write(`${USAGE}\n`);
    process.exitCode = await runClient(['help']);
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        'broker-port': { type: 'string' },
        'external-broker': { type: 'string' },
        host: { type: 'string' },
        'public-host': { type: 'string' },
        'log-level': { type: 'string' },
        out: { type: 'string' },
        user: { type: 'string' },
        name: { type: 'string', multiple: true },
        'worker-cert-lifetime': { type: 'string' },
        'crl-file': { type: 'string' },
        'crl-reload-command': { type: 'string' },
        'max-log-bytes': { type: 'string' },
        'default-runner-image': { type: 'string' },
        'default-launcher-image': { type: 'string' },
        'protocol-version': { type: 'string' },
      },
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  const dataDir = values['data-dir'];
  if (!dataDir) usage('--data-dir is required');

  if (positionals[0] === 'mosquitto-config') {
    if (!values.out) usage('--out is required');
    const { confPath, brokerUrl } = await writeMosquittoConfig({
      dataDir,
      outDir: values.out,
      port: port(values.port, '--port', 8883),
      bindAddress: values.host ?? '127.0.0.1',
      runAsUser: values.user,
      hosts: values.name && values.name.length > 0 ? values.name : undefined,
    });
    process.stdout.write(`mosquitto config written: conf=${confPath} broker=${brokerUrl}\n`);
    return;
  }
  if (positionals.length > 0) usage(`unknown command ${JSON.stringify(positionals[0])}`);

  const level = values['log-level'] ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) usage(`--log-level must be debug, info, warn or error, got ${JSON.stringify(level)}`);
  const ext = values['external-broker'];
  if (ext !== undefined && !/^mqtts:\/\/[^/]+:\d+\/?$/.test(ext)) usage(`--external-broker must look like mqtts://host:port, got ${JSON.stringify(ext)}`);

  let workerCertLifetimeMs: number | undefined;
  const lifetime = values['worker-cert-lifetime'];
  if (lifetime !== undefined) {
    try {
      workerCertLifetimeMs = parseDuration(lifetime);
    } catch (err) {
      usage(`--worker-cert-lifetime must be a duration such as 720h, got ${JSON.stringify(lifetime)}: ${(err as Error).message}`);
    }
    if (workerCertLifetimeMs < 3600_000) usage(`--worker-cert-lifetime must be at least 1h, got ${JSON.stringify(lifetime)}`);
  }
  const reload = values['crl-reload-command'];
  let maxLogBytes: number | undefined;
  if (values['max-log-bytes'] !== undefined) {
    try {
      maxLogBytes = parseByteSize(values['max-log-bytes']);
    } catch (err) {
      usage(`--max-log-bytes: ${(err as Error).message}`);
    }
  }

  const versionFlag = values['protocol-version'];
  const protocolVersion = PROTOCOL_VERSIONS.find((v) => String(v) === versionFlag);
  if (versionFlag !== undefined && protocolVersion === undefined) usage(`--protocol-version must be ${PROTOCOL_VERSIONS.join(' or ')}, got ${JSON.stringify(versionFlag)}`);

  const backend = await startBackend({
    dataDir,
    host: values.host,
    publicHost: values['public-host'],
    // Stable defaults: pool tokens carry these URLs, so they must not change between restarts.
    port: port(values.port, '--port', 9443),
    brokerPort: port(values['broker-port'], '--broker-port', 8883),
    externalBroker: ext,
    logLevel: level as LogLevel,
    workerCertLifetimeMs,
    maxLogBytes,
    defaultRunnerImage: values['default-runner-image'],
    defaultLauncherImage: values['default-launcher-image'],
    protocolVersion,
    crlFile: values['crl-file'],
    // e.g. "systemctl reload mosquitto" or "pkill -HUP -x mosquitto": mosquitto rereads its crlfile on SIGHUP.
    onCrlWritten: reload === undefined ? undefined : () => runReload(reload),
  });
  process.stdout.write(`backend ready: api=${backend.apiUrl} broker=${backend.brokerUrl}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'stopping', signal }) + '\n');
    backend.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: Error) => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'backend failed to start', error: err.message }) + '\n');
  process.exit(1);
});
