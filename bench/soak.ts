/**
 * `npm run soak`: load plus faults on a cluster of its own with a real node
 * (see bench/lib/soak.ts), then every run accounted for. Exits 1 when a run
 * was lost, duplicated or failed by the system, or a phantom or orphan is
 * left.
 *
 *   npm run soak                          # 8 minutes, 2 runs/s, 8 workers (the chaos run of issue 15)
 *   npm run soak -- --minutes 2 --rate 1 --pool-size 4 --report soak.json
 */
import { writeFileSync } from 'node:fs';
import { formatReport, runSoak } from './lib/soak.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`soak: --${name} needs a positive number, got ${JSON.stringify(process.argv[i + 1])}\n`);
    process.exit(2);
  }
  return value;
}

const reportIndex = process.argv.indexOf('--report');
const reportPath = reportIndex < 0 ? undefined : process.argv[reportIndex + 1];
const report = await runSoak({
  durationMs: option('minutes', 8) * 60_000,
  ratePerSecond: option('rate', 2),
  poolSize: option('pool-size', 8),
  failingShare: 0.1,
  log: (line) => process.stderr.write(`[soak] ${line}\n`),
});
process.stdout.write(`${formatReport(report)}\n`);
if (reportPath !== undefined) writeFileSync(reportPath, `${JSON.stringify(report, null, 2)}\n`);
const bad = report.failedBySystem.length + report.lost.length + report.duplicated.length + report.phantoms.length + report.orphans.length;
process.exit(bad === 0 ? 0 : 1);
