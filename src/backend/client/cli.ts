/**
 * The reference backend's command-line client, so that nobody needs curl:
 * `npm run -s backend -- <command>`. It talks to the admin API with the
 * backend's CA and admin token, found in the backend's data directory
 * (`--data-dir`, default `./backend-data` or `$KWC_BACKEND_DIR`; each can be
 * given on its own with `--api-url`, `--ca` and `--admin-token-file`).
 *
 * Exit codes: 0 done; 1 the backend refused or failed, or (`runs submit
 * --follow`) the run did not finish successfully; 2 bad usage.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { decodeSecretPrivateKey } from '../../protocol/token.js';
import { parseDuration } from '../../runtime/duration.js';
import { AdminApi, ClientError, type RunView } from './admin-api.js';

/** Where the user ran the command: `npm run` runs scripts in the package's root, and says where it was called from in INIT_CWD. */
function userPath(path: string): string {
  return resolve(process.env.INIT_CWD ?? process.cwd(), path);
}

export const CLIENT_COMMANDS: readonly string[] = ['help', 'pools', 'runs', 'logs'];

const CONNECTION_OPTIONS = {
  'data-dir': { type: 'string' },
  'api-url': { type: 'string' },
  ca: { type: 'string' },
  'admin-token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const CONNECTION_HELP = `Connection (every command):
  --data-dir <dir>            the backend's data directory (default $KWC_BACKEND_DIR or ./backend-data):
                              api-url, ca.pem and admin-token are read from it
  --api-url <url>             the backend's API, e.g. https://127.0.0.1:9443 (default: <data-dir>/api-url)
  --ca <file>                 the backend's CA certificate (default: <data-dir>/ca.pem)
  --admin-token-file <file>   the admin token (default: <data-dir>/admin-token)`;

const HELP: Record<string, string> = {
  main: `usage: npm run -s backend -- <command> [options]

Commands:
  pools create <name>         create a pool; writes worker-pool.config and key.pem for its Secret
  pools list                  list the pools
  pools show <pool-id>        a pool, its workers and its pending runs
  runs submit --pool <id> <script-file>
                              submit a run whose worker runs the script (- reads it from stdin)
  runs list [--pool <id>]     list the runs
  runs show <run-id>          a run: state, worker, exit code, reason, log size
  runs stop <run-id>          stop a run
  logs <run-id> [--follow]    the run's log as the backend has it

"<command> --help" says more about each.

${CONNECTION_HELP}
`,
  'pools create': `usage: npm run -s backend -- pools create <name> [--out-dir <dir>] [--force]

Creates a pool in the backend and writes its two credentials, as the README's
"kubectl create secret" command reads them:
  <out-dir>/worker-pool.config   the pool token (base64 text)
  <out-dir>/key.pem              the pool's private key (PEM)
Both mode 0600. Existing files are not overwritten without --force.
Prints the pool id on stdout.

  --out-dir <dir>   where to write the files (default: the current directory)
  --force           overwrite existing files

${CONNECTION_HELP}
`,
  'pools list': `usage: npm run -s backend -- pools list [--json]

Lists the pools: id and name.

${CONNECTION_HELP}
`,
  'pools show': `usage: npm run -s backend -- pools show <pool-id> [--json]

Shows a pool: its name, pending runs, and its workers with their state
(idle, busy, draining, offline) and whether they are drained.

${CONNECTION_HELP}
`,
  'runs submit': `usage: npm run -s backend -- runs submit --pool <pool-id> <script-file | -> [options]

Submits a run whose worker container runs the script (shell text, at most
256 KiB) in the run's workspace, with the binaries cache's tools first on
PATH; its exit code is the run's outcome. Prints the run id on stdout.

  --pool <pool-id>          the pool to run on (required)
  --env NAME=VALUE          a variable of the run's environment (repeat it)
  --runner-image <ref>      the worker container's image (default: the backend's)
  --launcher-image <ref>    the init and launcher-grpc image (default: the backend's)
  --run-timeout <duration>  the run fails after this long, e.g. 30m (SPACELIFT_LAUNCHER_RUN_TIMEOUT)
  --logs-timeout <duration> the run fails after this long without output (SPACELIFT_LAUNCHER_LOGS_TIMEOUT)
  --follow                  then print the run's log as it comes, and exit 0 only if the run finished

${CONNECTION_HELP}
`,
  'runs list': `usage: npm run -s backend -- runs list [--pool <pool-id>] [--json]

Lists the runs (of one pool with --pool), oldest first: id, state, worker,
exit code, log size, reason.

${CONNECTION_HELP}
`,
  'runs show': `usage: npm run -s backend -- runs show <run-id> [--json]

Shows a run: pool, state, worker, exit code, reason, script and log sizes,
times.

${CONNECTION_HELP}
`,
  'runs stop': `usage: npm run -s backend -- runs stop <run-id>

Stops a run: at once if it waits in the queue, otherwise its worker stops
the run's Pod (with the pool's grace period) and reports it stopped.

${CONNECTION_HELP}
`,
  logs: `usage: npm run -s backend -- logs <run-id> [--follow]

Prints the run's log (what its worker container printed) as the backend has
it. With --follow, keeps printing what arrives until the log is complete or
the run ended.

${CONNECTION_HELP}
`,
};

class UsageError extends Error {}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options: { ...CONNECTION_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function connect(values: { 'data-dir'?: string; 'api-url'?: string; ca?: string; 'admin-token-file'?: string }): AdminApi {
  const dataDir = userPath(values['data-dir'] ?? process.env.KWC_BACKEND_DIR ?? 'backend-data');
  const read = (file: string, what: string, flag: string): string => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
      const hint = values[flag as keyof typeof values] === undefined ? ` (from --data-dir ${dataDir}; is that the backend's data directory? Or pass ${`--${flag}`})` : '';
      throw new ClientError(`cannot read ${what} ${file}: ${why}${hint}`);
    }
  };
  const tokenFile = values['admin-token-file'] === undefined ? join(dataDir, 'admin-token') : userPath(values['admin-token-file']);
  const caFile = values.ca === undefined ? join(dataDir, 'ca.pem') : userPath(values.ca);
  const apiUrl = values['api-url'] ?? read(join(dataDir, 'api-url'), "the backend's API URL file", 'api-url');
  const adminToken = read(tokenFile, 'the admin token file', 'admin-token-file');
  // The token never appears in a message, even a wrong one.
  if (!/^[A-Za-z0-9._~+/=-]+$/.test(adminToken)) throw new ClientError(`the admin token file ${tokenFile} does not hold an admin token (a single word, as the backend writes <data-dir>/admin-token)`);
  return new AdminApi({ apiUrl, caPem: read(caFile, "the backend's CA certificate", 'ca'), adminToken, adminTokenFile: tokenFile, caFile });
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 3))).join('').trimEnd()).join('\n') + '\n';
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function logSummary(r: RunView): string {
  return `${bytes(r.log.bytes)}${r.log.truncated ? ' (truncated)' : r.log.complete ? '' : ' (so far)'}`;
}

function one(positionals: readonly string[], what: string, command: string): string {
  if (positionals.length !== 1) throw new UsageError(`${command} takes one ${what}, got ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  return positionals[0] as string;
}

const out = (text: string): void => void process.stdout.write(text);
const err = (text: string): void => void process.stderr.write(text);

async function poolsCreate(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { 'out-dir': { type: 'string' }, force: { type: 'boolean' } });
  if (values.help === true) return help('pools create');
  const name = one(positionals, 'pool name', 'pools create');
  const dir = userPath(values['out-dir'] ?? '.');
  const files = { token: join(dir, 'worker-pool.config'), key: join(dir, 'key.pem') };
  if (values.force !== true) {
    const there = Object.values(files).filter((f) => existsSync(f));
    if (there.length > 0) throw new ClientError(`${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}: pass --force to overwrite, or --out-dir <another directory>`);
  }
  const api = connect(values);
  const pool = await api.createPool(name);
  for (const [file, content] of [
    [files.token, pool.token],
    [files.key, decodeSecretPrivateKey(pool.privateKey)],
  ] as const) {
    writeFileSync(file, content, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  err(`pool ${pool.id} (${name}) created; its token is in ${files.token} and its private key in ${files.key}. Its Secret:\n`);
  err(`  kubectl create secret generic ${name}-credentials --from-literal=token="$(cat ${files.token})" --from-literal=privateKey="$(base64 -w 0 < ${files.key})"\n`);
  out(`${pool.id}\n`);
  return 0;
}

async function poolsList(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } });
  if (values.help === true) return help('pools list');
  if (positionals.length > 0) throw new UsageError(`pools list takes no arguments, got ${positionals.join(' ')}`);
  const pools = await connect(values).listPools();
  if (values.json === true) out(`${JSON.stringify(pools, null, 2)}\n`);
  else out(table([['POOL', 'NAME'], ...pools.map((p) => [p.id, p.name])]));
  return 0;
}

async function poolsShow(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } });
  if (values.help === true) return help('pools show');
  const pool = await connect(values).getPool(one(positionals, 'pool id', 'pools show'));
  if (values.json === true) {
    out(`${JSON.stringify(pool, null, 2)}\n`);
    return 0;
  }
  out(`pool ${pool.id} (${pool.name}): ${pool.pendingRuns} run(s) pending, ${pool.workers.length} worker(s)\n`);
  if (pool.workers.length > 0) out(table([['WORKER', 'STATE', 'DRAINED'], ...pool.workers.map((w) => [w.id, w.state, String(w.drained)])]));
  return 0;
}

function readScript(source: string): string {
  try {
    return readFileSync(source === '-' ? 0 : userPath(source), 'utf8');
  } catch (e) {
    throw new ClientError(`cannot read the script ${source === '-' ? 'from stdin' : source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

function seconds(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    const ms = parseDuration(text);
    if (ms < 1000 || ms % 1000 !== 0) throw new Error('must be whole seconds, at least 1s');
    return ms / 1000;
  } catch (e) {
    throw new UsageError(`${flag} must be a duration such as 90s, 30m or 1h, got ${JSON.stringify(text)}: ${(e as Error).message}`);
  }
}

async function runsSubmit(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    pool: { type: 'string' },
    env: { type: 'string', multiple: true },
    'runner-image': { type: 'string' },
    'launcher-image': { type: 'string' },
    'run-timeout': { type: 'string' },
    'logs-timeout': { type: 'string' },
    follow: { type: 'boolean' },
  });
  if (values.help === true) return help('runs submit');
  if (values.pool === undefined) throw new UsageError('runs submit needs --pool <pool-id> (npm run -s backend -- pools list shows them)');
  const script = readScript(one(positionals, 'script file (or - for stdin)', 'runs submit'));
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--env must be NAME=VALUE, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const timeouts: Record<string, number> = {};
  const run = seconds('--run-timeout', values['run-timeout']);
  const logs = seconds('--logs-timeout', values['logs-timeout']);
  if (run !== undefined) timeouts.runSeconds = run;
  if (logs !== undefined) timeouts.logsSeconds = logs;
  const api = connect(values);
  const body: Record<string, unknown> = { poolId: values.pool, script };
  if (Object.keys(env).length > 0) body.env = env;
  if (Object.keys(timeouts).length > 0) body.timeouts = timeouts;
  if (values['runner-image'] !== undefined) body.runnerImage = values['runner-image'];
  if (values['launcher-image'] !== undefined) body.launcherImage = values['launcher-image'];
  const { id } = await api.createRun(body);
  if (values.follow !== true) {
    out(`${id}\n`);
    return 0;
  }
  err(`run ${id} submitted; its log follows\n`);
  await api.streamLog(id, true, (chunk) => process.stdout.write(chunk));
  const ended = await api.waitForEnd(id);
  err(`run ${id} ${ended.state}${ended.exitCode === null ? '' : ` (exit code ${ended.exitCode})`}${ended.reason ? `: ${ended.reason}` : ''}\n`);
  return ended.state === 'finished' ? 0 : 1;
}

async function runsList(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { pool: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help === true) return help('runs list');
  if (positionals.length > 0) throw new UsageError(`runs list takes no arguments, got ${positionals.join(' ')}`);
  const runs = (await connect(values).listRuns(values.pool)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  if (values.json === true) out(`${JSON.stringify(runs, null, 2)}\n`);
  else out(table([['RUN', 'STATE', 'WORKER', 'EXIT', 'LOG', 'REASON'], ...runs.map((r) => [r.id, r.state, r.workerId ?? '', r.exitCode === null ? '' : String(r.exitCode), logSummary(r), r.reason ?? ''])]));
  return 0;
}

async function runsShow(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } });
  if (values.help === true) return help('runs show');
  const r = await connect(values).getRun(one(positionals, 'run id', 'runs show'));
  if (values.json === true) {
    out(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  const rows: [string, string][] = [
    ['run', r.id],
    ['pool', r.poolId],
    ['state', r.state],
    ['worker', r.workerId ?? ''],
    ['exit code', r.exitCode === null ? '' : String(r.exitCode)],
    ['reason', r.reason ?? ''],
    ['script', r.script === null ? 'none' : `${bytes(r.script.bytes)}, sha256 ${r.script.sha256}`],
    ['log', logSummary(r)],
    ['created', r.createdAt],
    ['updated', r.updatedAt],
  ];
  out(rows.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`).join('\n') + '\n');
  return 0;
}

async function runsStop(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help === true) return help('runs stop');
  const r = await connect(values).stopRun(one(positionals, 'run id', 'runs stop'));
  out(`run ${r.id}: ${r.state}${['finished', 'failed', 'stopped'].includes(r.state) ? '' : ' (stop requested; its worker stops the run Pod)'}\n`);
  return 0;
}

async function logs(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { follow: { type: 'boolean', short: 'f' } });
  if (values.help === true) return help('logs');
  await connect(values).streamLog(one(positionals, 'run id', 'logs'), values.follow === true, (chunk) => process.stdout.write(chunk));
  return 0;
}

function help(topic: string): number {
  out(HELP[topic] ?? HELP.main ?? '');
  return 0;
}

const SUBCOMMANDS: Record<string, Record<string, (args: readonly string[]) => Promise<number>>> = {
  pools: { create: poolsCreate, list: poolsList, show: poolsShow },
  runs: { submit: runsSubmit, list: runsList, show: runsShow, stop: runsStop },
};

/** Runs one client command; resolves to the exit code. */
export async function runClient(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') return help('main');
    if (command === 'logs') return await logs(rest);
    const group = SUBCOMMANDS[command];
    if (group === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    const [sub, ...args] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      out(Object.keys(group).map((s) => HELP[`${command} ${s}`] ?? '').join('\n'));
      return sub === undefined ? 2 : 0;
    }
    const fn = group[sub];
    if (fn === undefined) throw new UsageError(`unknown command "${command} ${sub}" (${command} has: ${Object.keys(group).join(', ')})`);
    return await fn(args);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`${e.message}\n(npm run -s backend -- ${command === undefined ? '' : `${command} `}--help says more)\n`);
      return 2;
    }
    if (e instanceof ClientError) {
      err(`${e.message}\n`);
      return 1;
    }
    err(`${command ?? ''}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
