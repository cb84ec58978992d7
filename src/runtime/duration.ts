/**
 * Go-compatible durations (`time.ParseDuration` / `time.Duration.String`).
 *
 * CRD fields, flags and the launcher's environment (`SPACELIFT_LAUNCHER_RUN_TIMEOUT`)
 * all speak Go durations, so we parse and print exactly what Go does rather than
 * inventing a friendlier dialect that the Go side could then reject.
 *
 * @module
 */

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['µs', 1_000n], // U+00B5 micro sign
  ['μs', 1_000n], // U+03BC Greek mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const MAX_NS = (1n << 63n) - 1n;

/** Thrown by {@link parseDuration} with Go's wording, so messages match what users see from Go tools. */
export class DurationError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`time: ${reason} ${JSON.stringify(input)}`);
    this.name = 'DurationError';
  }
}

/**
 * Parses a Go duration ("70m", "1h10m", "1.5h", "300ms", "-2s", "0") into whole nanoseconds.
 * Exact (BigInt) because float arithmetic would make "1.1s" != 1100ms.
 */
export function parseDurationNs(input: string): bigint {
  let s = input;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw new DurationError(input, 'invalid duration');

  let total = 0n;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2] ?? '';
    if (whole === '' && frac === '') throw new DurationError(input, 'invalid duration');
    s = s.slice(m?.[0].length ?? 0);

    const unitMatch = /^[^\d.]+/.exec(s);
    if (!unitMatch) throw new DurationError(input, 'missing unit in duration');
    const unit = unitMatch[0];
    const scale = NS_PER_UNIT.get(unit);
    if (scale === undefined) {
      throw new DurationError(input, `unknown unit ${JSON.stringify(unit)} in duration`);
    }
    s = s.slice(unit.length);

    let value = BigInt(whole === '' ? '0' : whole) * scale;
    if (frac !== '') {
      // Go truncates fractions below a nanosecond; so do we.
      value += (BigInt(frac) * scale) / 10n ** BigInt(frac.length);
    }
    total += value;
    if (total > MAX_NS) throw new DurationError(input, 'invalid duration');
  }
  return negative ? -total : total;
}

/** Like {@link parseDurationNs} but in (possibly fractional) milliseconds, the unit timers use. */
export function parseDuration(input: string): number {
  return Number(parseDurationNs(input)) / 1e6;
}

function trimFraction(whole: bigint, frac: bigint, digits: number): string {
  if (frac === 0n) return whole.toString();
  const f = frac.toString().padStart(digits, '0').replace(/0+$/, '');
  return `${whole}.${f}`;
}

/** Formats nanoseconds exactly like Go's `time.Duration.String()` ("1h10m0s", "1.5s", "300ms", "0s"). */
export function formatDurationNs(ns: bigint): string {
  if (ns === 0n) return '0s';
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  if (abs < 1_000n) return `${sign}${abs}ns`;
  if (abs < 1_000_000n) return `${sign}${trimFraction(abs / 1_000n, abs % 1_000n, 3)}µs`;
  if (abs < 1_000_000_000n) {
    return `${sign}${trimFraction(abs / 1_000_000n, abs % 1_000_000n, 6)}ms`;
  }
  const hours = abs / 3_600_000_000_000n;
  const minutes = (abs / 60_000_000_000n) % 60n;
  const secNs = abs % 60_000_000_000n;
  const seconds = trimFraction(secNs / 1_000_000_000n, secNs % 1_000_000_000n, 9);
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

/** Formats milliseconds as a Go duration string; sub-nanosecond remainders are rounded. */
export function formatDuration(ms: number): string {
  return formatDurationNs(BigInt(Math.round(ms * 1e6)));
}
