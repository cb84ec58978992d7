/**
 * The curve's measured points (one per N) checked at the boundary, and the
 * per-worker figures derived from them; bench/curve.ts and bench/curve-svg.ts
 * both start here so that a bad point is refused the same way by each.
 */

export interface CurvePoint {
  /** N. */
  workers: number;
  /** poolSize 0 -> N until status.actualPoolSize == N. */
  scaleOutSeconds: number;
  /** The same-run limit for that scale-out, when the bench measured one. */
  scaleLimitSeconds?: number;
  /** Idle controller RSS with N connected workers. */
  rssMiB: number;
  /** Controller RSS before any worker. */
  rssBaseMiB: number;
  /** SIGKILL -> every session re-announced with N busy workers, when measured. */
  recoverySeconds?: number;
  /** True when the bench played the kubelet at this N (no real node). */
  playedKubelet: boolean;
}

export interface CurveRow extends CurvePoint {
  /** scaleOutSeconds / scaleLimitSeconds, when the limit was measured. */
  scaleRatio?: number;
  scaleMsPerWorker: number;
  /** (rssMiB - rssBaseMiB) / N; negative when a collection freed more than the workers hold. */
  mibPerWorker: number;
  recoveryMsPerWorker?: number;
}

// Quoted when not a number, so that a workers of "100" read from JSON is told apart from 100.
export const show = (v: unknown): string => (typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v)));

function figure(at: string, field: string, v: unknown, min: '>= 0' | '> 0'): void {
  const ok = typeof v === 'number' && Number.isFinite(v) && (min === '>= 0' ? v >= 0 : v > 0);
  if (!ok) throw new Error(`${at} has ${field} ${show(v)}; expected a finite number ${min}`);
}

/** The points sorted by N, or an error naming the first bad field (positions count from 1, in the order given). */
function checked(points: readonly CurvePoint[]): CurvePoint[] {
  if (points.length === 0) throw new Error('curve: no points; expected one per N');
  const positionOf = new Map<number, number>();
  points.forEach((p, i) => {
    const at = `curve: point ${i + 1}`;
    if (typeof p.workers !== 'number' || !Number.isInteger(p.workers) || p.workers <= 0) {
      throw new Error(`${at} has workers ${show(p.workers)}; expected a positive integer`);
    }
    const first = positionOf.get(p.workers);
    if (first !== undefined) throw new Error(`curve: points ${first} and ${i + 1} both have workers ${p.workers}`);
    positionOf.set(p.workers, i + 1);
    figure(at, 'scaleOutSeconds', p.scaleOutSeconds, '>= 0');
    // A zero limit would make the ratio infinite, and no scale-out is free.
    if (p.scaleLimitSeconds !== undefined) figure(at, 'scaleLimitSeconds', p.scaleLimitSeconds, '> 0');
    figure(at, 'rssMiB', p.rssMiB, '>= 0');
    figure(at, 'rssBaseMiB', p.rssBaseMiB, '>= 0');
    if (p.recoverySeconds !== undefined) figure(at, 'recoverySeconds', p.recoverySeconds, '>= 0');
    if (typeof p.playedKubelet !== 'boolean') throw new Error(`${at} has playedKubelet ${show(p.playedKubelet)}; expected true or false`);
  });
  return [...points].sort((a, b) => a.workers - b.workers);
}

/** One row per point, sorted by N, with the per-worker figures. */
export function curveRows(points: readonly CurvePoint[]): CurveRow[] {
  return checked(points).map((p) => ({
    ...p,
    ...(p.scaleLimitSeconds === undefined ? {} : { scaleRatio: p.scaleOutSeconds / p.scaleLimitSeconds }),
    scaleMsPerWorker: (1000 * p.scaleOutSeconds) / p.workers,
    mibPerWorker: (p.rssMiB - p.rssBaseMiB) / p.workers,
    ...(p.recoverySeconds === undefined ? {} : { recoveryMsPerWorker: (1000 * p.recoverySeconds) / p.workers }),
  }));
}
