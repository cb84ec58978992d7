/**
 * `npm run bench -- [options]`: see --help.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { repoRoot } from '../src/cluster/binaries.js';
import { ALL_PHASES, runBench, type Phase } from './bench.js';
import { rows, textTable, writeSection } from './report.js';

const USAGE = `npm run bench -- [options]

  --workers N           workers in the pool (default 100; try 1000)
  --runs N              runs dispatched at once, busy workers at the kill (default: --workers)
  --idle-seconds S      quiet window of the idle measure (default 60)
  --baseline-seconds S  apiserver background window before the controller starts (default 30)
  --keys K              RSA-2048 key pairs timed for the scale-out limit (default 60; key generation time is heavy-tailed)
  --phases LIST         comma-separated of scale,idle,lifecycle,coldstart,dispatch,failover,recovery (default all)
  --kubeconfig PATH     use this cluster instead of starting a fresh control plane
  --cpu-prof DIR        write the controller processes' V8 CPU profiles to DIR
  --recovery-leader-elect  the replacement process campaigns for the Lease (adds the lease wait)
  --compiled            run the controller compiled to JavaScript (as an image would), not through tsx
  --no-build            with --compiled: reuse .tmp/bench-build as it is (to try a change on the compiled copy)
  --controller-metrics  serve the controller's metrics and count its reconciles per phase
  --out PATH            markdown file to update (default docs/benchmarks.md)
  --json PATH           also write the raw results as JSON
  --no-write            print only
`;

function parse(argv: string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n\n${USAGE}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (['help', 'no-write', 'recovery-leader-elect', 'compiled', 'no-build', 'controller-metrics'].includes(name)) out[name] = true;
    else out[name] = inline ?? argv[++i] ?? '';
  }
  return out;
}

function int(v: string | boolean | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${String(v)}`);
  return n;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  if (args.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const known = new Set(['workers', 'runs', 'idle-seconds', 'baseline-seconds', 'keys', 'phases', 'kubeconfig', 'cpu-prof', 'recovery-leader-elect', 'out', 'json', 'no-write', 'help', 'compiled', 'no-build', 'controller-metrics']);
  for (const k of Object.keys(args)) if (!known.has(k)) throw new Error(`unknown option --${k}\n\n${USAGE}`);
  const phases = new Set<Phase>(
    typeof args.phases === 'string' ? (args.phases.split(',').map((p) => p.trim()) as Phase[]) : ALL_PHASES,
  );
  for (const p of phases) if (!ALL_PHASES.includes(p)) throw new Error(`unknown phase ${p}; phases are ${ALL_PHASES.join(',')}`);
  phases.add('scale');
  const cpuProfDir = typeof args['cpu-prof'] === 'string' ? resolve(args['cpu-prof']) : undefined;
  if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true });

  const started = Date.now();
  const result = await runBench({
    workers: int(args.workers, 100, 'workers'),
    runs: args.runs === undefined ? undefined : int(args.runs, 100, 'runs'),
    idleSeconds: int(args['idle-seconds'], 60, 'idle-seconds'),
    baselineSeconds: int(args['baseline-seconds'], 30, 'baseline-seconds'),
    keys: int(args.keys, 60, 'keys'),
    phases,
    kubeconfigPath: typeof args.kubeconfig === 'string' ? resolve(args.kubeconfig) : undefined,
    cpuProfDir,
    recoveryLeaderElect: args['recovery-leader-elect'] === true,
    compiled: args.compiled === true,
    noBuild: args['no-build'] === true,
    controllerMetrics: args['controller-metrics'] === true,
    log: (line) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`),
  });

  process.stdout.write(`\n${textTable(rows(result))}\n\n`);
  if (result.problems.length > 0) process.stdout.write(`problems: ${result.problems.join('; ')}\n`);
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  if (typeof args.json === 'string') writeFileSync(resolve(args.json), `${JSON.stringify(result, null, 2)}\n`);
  if (args['no-write'] !== true) {
    const out = typeof args.out === 'string' ? resolve(args.out) : join(repoRoot, 'docs', 'benchmarks.md');
    writeSection(out, result, command);
    process.stdout.write(`written to ${out}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
