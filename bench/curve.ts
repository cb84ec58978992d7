/**
 * `npm run bench -- --curve` on paper: how scale-out time, idle memory and
 * recovery grow with the number of workers N (issue 19, requirement 7).
 * Pure: the bench measures one point per N and hands them here; this turns
 * them into a table for docs/benchmarks.md and the SVG that table links.
 */
import { curveRows, show, type CurvePoint, type CurveRow } from './curve-points.js';

export { curveRows, type CurvePoint, type CurveRow } from './curve-points.js';
export { curveSvg } from './curve-svg.js';

export interface CurveMeta {
  date: string;
  command: string;
  cores: number;
  /** How the controller ran, e.g. "compiled" or "through tsx". */
  controller: string;
}

const fixed = (v: number | undefined, digits: number): string => (v === undefined ? '-' : v.toFixed(digits));

export const CURVE_COLUMNS = [
  'N',
  'scale-out s',
  'limit s',
  'ratio',
  'scale-out ms/worker',
  'idle RSS MiB',
  'base MiB',
  'MiB/worker',
  'recovery s',
  'recovery ms/worker',
  'kubelet',
] as const;

function cells(r: CurveRow): string[] {
  return [
    String(r.workers),
    fixed(r.scaleOutSeconds, 2),
    fixed(r.scaleLimitSeconds, 2),
    fixed(r.scaleRatio, 2),
    fixed(r.scaleMsPerWorker, 1),
    fixed(r.rssMiB, 1),
    fixed(r.rssBaseMiB, 1),
    fixed(r.mibPerWorker, 3),
    fixed(r.recoverySeconds, 2),
    fixed(r.recoveryMsPerWorker, 1),
    r.playedKubelet ? 'played' : 'real',
  ];
}

/** `text` as one markdown code span, whatever backticks it holds. */
function code(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

function checkedMeta(meta: CurveMeta): void {
  for (const k of ['date', 'command', 'controller'] as const) {
    if (typeof meta[k] !== 'string' || meta[k].trim() === '') throw new Error(`curve: meta.${k} ${show(meta[k])}; expected a non-empty string`);
  }
  if (!Number.isInteger(meta.cores) || meta.cores <= 0) throw new Error(`curve: meta.cores ${show(meta.cores)}; expected a positive integer`);
}

const list = (ns: readonly number[]): string => ns.join(', ');

/** The curve's section of docs/benchmarks.md; the SVG is expected beside it as bench-curve.svg. */
export function curveMarkdown(points: readonly CurvePoint[], meta: CurveMeta): string {
  const rs = curveRows(points);
  checkedMeta(meta);
  const played = rs.filter((r) => r.playedKubelet).map((r) => r.workers);
  const real = rs.filter((r) => !r.playedKubelet).map((r) => r.workers);
  const kubelet =
    played.length === 0
      ? 'Kubelet: real at every N.'
      : real.length === 0
        ? 'Kubelet: played by the bench (no real node) at every N.'
        : `Kubelet: real at N = ${list(real)}; played by the bench (no real node) at N = ${list(played)}.`;
  return [
    `### How cost grows with N = ${list(rs.map((r) => r.workers))}, controller ${meta.controller} (${meta.date.slice(0, 10)})`,
    '',
    `${code(meta.command)} on ${meta.cores} cores; measured ${meta.date}. Per worker: scale-out and recovery in ms of wall time per worker, memory as (idle RSS - base) / N.`,
    '',
    `| ${CURVE_COLUMNS.join(' | ')} |`,
    `| ${CURVE_COLUMNS.map(() => '---:').join(' | ')} |`,
    ...rs.map((r) => `| ${cells(r).join(' | ')} |`),
    '',
    kubelet,
    '',
    '![Scale-out seconds, idle controller RSS in MiB and recovery seconds against the number of workers N](bench-curve.svg)',
  ].join('\n');
}

