/**
 * `npm run bench -- [options]`: see --help.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { repoRoot } from '../src/cluster/binaries.js';
import { PROTOCOL_VERSIONS, type ProtocolVersion } from '../src/protocol/version.js';
import { BENCH_BROKERS, type BenchBroker } from './lib/backend.js';
import { ALL_PHASES, runBench, type BenchOptions, type BenchResult, type Phase } from './bench.js';
import { curveMarkdown, curveSvg, type CurvePoint } from './curve.js';
import { rows, textTable, writeBlock, writeSection } from './report.js';

const USAGE = `npm run bench -- [options]

  --workers N           workers in the pool (default 100; try 1000)
  --runs N              runs dispatched at once, busy workers at the kill (default: --workers)
  --idle-seconds S      quiet window of the idle measure (default 60)
  --baseline-seconds S  apiserver background window before the controller starts (default 30)
  --keys K              worker key pairs (of the pool's type) timed for the scale-out limit (default 60)
  --protocol-version V  the backend speaks protocol version 1 (RSA worker keys) or 2 (ECDSA P-256; the default)
  --broker B            the workers' broker: embedded (the backend's own, in the bench process; the default)
                        or mosquitto (a mosquitto process beside it, configured as docs/mosquitto.md)
  --latency-runs N      runs of the queue-to-run latency measure (default 50)
  --phases LIST         comma-separated of scale,idle,lifecycle,coldstart,latency,dispatch,failover,recovery (default all)
  --kubeconfig PATH     use this cluster instead of starting a fresh control plane
  --cpu-prof DIR        write the controller processes' V8 CPU profiles to DIR
  --recovery-leader-elect  the replacement process campaigns for the Lease (adds the lease wait)
  --compiled            run the controller compiled to JavaScript (as an image would), not through tsx
  --no-build            with --compiled: reuse .tmp/bench-build as it is (to try a change on the compiled copy)
  --controller-metrics  serve the controller's metrics and count its reconciles per phase
  --heap-snapshot DIR   write a V8 heap snapshot of the controller to DIR at the end of the idle window
                        (then: npx tsx bench/heap-summary.ts DIR/<file>.heapsnapshot --workers N)
  --curve [LIST]        how cost grows: scale-out, idle RSS and recovery at each N of LIST (default 100,300,1000,2000),
                        one fresh cluster each; writes a table to the markdown file and docs/bench-curve.svg
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
    else if (name === 'curve') out[name] = inline ?? (argv[i + 1]?.startsWith('--') === false ? (argv[++i] as string) : true);
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

function protocolVersion(v: string | boolean | undefined): ProtocolVersion | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(PROTOCOL_VERSIONS as readonly number[]).includes(n)) throw new Error(`--protocol-version must be one of ${PROTOCOL_VERSIONS.join(', ')}, got ${String(v)}`);
  return n as ProtocolVersion;
}

function broker(v: string | boolean | undefined): BenchBroker | undefined {
  if (v === undefined) return undefined;
  if (!(BENCH_BROKERS as readonly unknown[]).includes(v)) throw new Error(`--broker must be one of ${BENCH_BROKERS.join(', ')}, got ${String(v)}`);
  return v as BenchBroker;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  if (args.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const known = new Set(['workers', 'runs', 'idle-seconds', 'baseline-seconds', 'keys', 'protocol-version', 'latency-runs', 'phases', 'kubeconfig', 'cpu-prof', 'recovery-leader-elect', 'out', 'json', 'no-write', 'help', 'compiled', 'no-build', 'controller-metrics', 'curve', 'heap-snapshot', 'broker']);
  for (const k of Object.keys(args)) if (!known.has(k)) throw new Error(`unknown option --${k}\n\n${USAGE}`);
  const phases = new Set<Phase>(
    typeof args.phases === 'string' ? (args.phases.split(',').map((p) => p.trim()) as Phase[]) : ALL_PHASES,
  );
  for (const p of phases) if (!ALL_PHASES.includes(p)) throw new Error(`unknown phase ${p}; phases are ${ALL_PHASES.join(',')}`);
  phases.add('scale');
  const cpuProfDir = typeof args['cpu-prof'] === 'string' ? resolve(args['cpu-prof']) : undefined;
  if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true });
  if (typeof args['heap-snapshot'] === 'string') mkdirSync(resolve(args['heap-snapshot']), { recursive: true });

  const started = Date.now();
  const curve = args.curve === undefined ? undefined : curveSizes(args.curve);
  const options: BenchOptions = {
    workers: int(args.workers, 100, 'workers'),
    runs: args.runs === undefined ? undefined : int(args.runs, 100, 'runs'),
    // A curve reads only RSS from the idle window, not request rates: shorter windows by default.
    idleSeconds: int(args['idle-seconds'], curve === undefined ? 60 : 30, 'idle-seconds'),
    baselineSeconds: int(args['baseline-seconds'], curve === undefined ? 30 : 10, 'baseline-seconds'),
    keys: int(args.keys, 60, 'keys'),
    protocolVersion: protocolVersion(args['protocol-version']),
    broker: broker(args.broker),
    latencyRuns: args['latency-runs'] === undefined ? undefined : int(args['latency-runs'], 50, 'latency-runs'),
    phases: curve === undefined ? phases : new Set<Phase>(['scale', 'idle', 'recovery']),
    kubeconfigPath: typeof args.kubeconfig === 'string' ? resolve(args.kubeconfig) : undefined,
    cpuProfDir,
    recoveryLeaderElect: args['recovery-leader-elect'] === true,
    compiled: args.compiled === true,
    noBuild: args['no-build'] === true,
    controllerMetrics: args['controller-metrics'] === true,
    heapSnapshotDir: typeof args['heap-snapshot'] === 'string' ? resolve(args['heap-snapshot']) : undefined,
    log: (line) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`),
  };
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const out = typeof args.out === 'string' ? resolve(args.out) : join(repoRoot, 'docs', 'benchmarks.md');
  if (curve !== undefined) {
    await runCurve(curve, options, command, args, out);
    return;
  }
  const result = await runBench(options);
  process.stdout.write(`\n${textTable(rows(result))}\n\n`);
  if (result.problems.length > 0) process.stdout.write(`problems: ${result.problems.join('; ')}\n`);
  if (typeof args.json === 'string') writeFileSync(resolve(args.json), `${JSON.stringify(result, null, 2)}\n`);
  if (args['no-write'] !== true) {
    writeSection(out, result, command);
    process.stdout.write(`written to ${out}\n`);
  }
}

function curveSizes(v: string | boolean): number[] {
  if (v === true) return [100, 300, 1000, 2000];
  const sizes = String(v).split(',').map((x) => Number(x.trim()));
  for (const n of sizes) if (!Number.isInteger(n) || n <= 0) throw new Error(`--curve takes a comma-separated list of worker counts, got ${String(v)}`);
  return sizes;
}

/** One fresh cluster per N (scale-out, idle, recovery), then the table and the plot. */
async function runCurve(sizes: readonly number[], options: BenchOptions, command: string, args: Record<string, string | boolean>, out: string): Promise<void> {
  const points: CurvePoint[] = [];
  const results: BenchResult[] = [];
  const failed: string[] = [];
  for (const [i, workers] of sizes.entries()) {
    options.log(`curve: N = ${workers} (${i + 1} of ${sizes.length})`);
    // The controller is compiled once, for the first size.
    let r: BenchResult;
    try {
      r = await runBench({ ...options, workers, runs: undefined, noBuild: options.noBuild === true || (options.compiled === true && i > 0) });
    } catch (err) {
      // One size that fails leaves the others' points standing; the table says which is missing and why.
      failed.push(`N = ${workers}: ${err instanceof Error ? err.message : String(err)}`);
      options.log(`curve: N = ${workers} failed: ${failed.at(-1) ?? ''}`);
      continue;
    }
    results.push(r);
    if (typeof args.json === 'string') writeFileSync(resolve(args.json), `${JSON.stringify(results, null, 2)}\n`);
    if (r.idle === undefined) throw new Error('curve: the idle measure did not run');
    points.push({
      workers,
      scaleOutSeconds: r.scale.seconds,
      scaleLimitSeconds: r.scale.limitSeconds,
      rssMiB: r.idle.rssMiB,
      rssBaseMiB: r.idle.rssBaseMiB,
      recoverySeconds: r.recovery?.seconds,
      playedKubelet: r.playedKubelet,
    });
    process.stdout.write(`\nN = ${workers}\n${textTable(rows(r))}\n`);
    if (r.problems.length > 0) process.stdout.write(`problems: ${r.problems.join('; ')}\n`);
  }
  const first = results[0];
  if (first === undefined) throw new Error(`curve: every size failed: ${failed.join('; ')}`);
  const problems = results.flatMap((r) => r.problems.map((p) => `N = ${r.options.workers}: ${p}`));
  const markdown = [
    curveMarkdown(points, { date: first.date, command, cores: first.cores, controller: options.compiled === true ? 'compiled' : 'through tsx' }),
    ...(failed.length > 0 ? ['', `Sizes that failed: ${failed.join('; ')}.`] : []),
    ...(problems.length > 0 ? ['', `Problems seen: ${problems.join('; ')}.`] : []),
  ].join('\n');
  process.stdout.write(`\n${markdown}\n`);
  if (args['no-write'] !== true) {
    const svg = join(dirname(out), 'bench-curve.svg');
    writeFileSync(svg, curveSvg(points));
    writeBlock(out, 'curve', markdown);
    process.stdout.write(`written to ${out} and ${svg}\n`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
