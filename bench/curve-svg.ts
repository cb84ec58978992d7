/**
 * The curve drawn as one self-contained SVG (docs/bench-curve.svg): three
 * panels side by side, scale-out, idle RSS and recovery against N. Plain
 * string building with a generic font family, so GitHub shows it as an image
 * with nothing to fetch and the file diffs as text between runs.
 */
import { curveRows, type CurveRow } from './curve-points.js';

interface Series {
  /** Class of its markers and value labels, for readers of the file and the tests. */
  id: string;
  legend: string;
  color: string;
  /** A reference (limit, base) rather than the measure itself. */
  dashed: boolean;
  points: ReadonlyArray<{ n: number; v: number }>;
}

interface Panel {
  id: string;
  title: string;
  yTitle: string;
  series: readonly Series[];
  /** Shown in place of the lines when no point has a value. */
  none: string;
}

const PANEL_W = 340;
const PANEL_H = 280;
const HEADER_H = 34;
const FOOTER_H = 24;
const M = { left: 58, right: 30, top: 58, bottom: 50 };
const PLOT_W = PANEL_W - M.left - M.right;
const PLOT_H = PANEL_H - M.top - M.bottom;
const GREY = '#555555';

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
const px = (v: number): string => v.toFixed(1);
// Floating steps (0.1 * 3) must print as 0.3, not 0.30000000000000004.
const tidy = (v: number): number => Number(v.toPrecision(12));

/** 0 up to the first multiple of a 1, 2, 2.5 or 5 x 10^k step at or above max, in about five steps. */
function niceTicks(max: number): number[] {
  if (max <= 0) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const count = Math.ceil(max / step);
  return Array.from({ length: count + 1 }, (_, i) => tidy(i * step));
}

/** Enough digits to tell the points apart without drowning the plot. */
const valueLabel = (v: number): string => v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${px(x)}" y="${px(y)}"${attrs === '' ? '' : ` ${attrs}`}>${esc(content)}</text>`;
}

function panelSvg(panel: Panel, index: number, xTicks: readonly number[]): string {
  const x0 = index * PANEL_W;
  const y0 = HEADER_H;
  const plotLeft = x0 + M.left;
  const plotBottom = y0 + PANEL_H - M.bottom;
  const values = panel.series.flatMap((s) => s.points.map((p) => p.v));
  const yTicks = values.length === 0 ? [0] : niceTicks(Math.max(...values));
  const xTop = xTicks[xTicks.length - 1] as number;
  const yTop = yTicks[yTicks.length - 1] as number;
  const sx = (n: number): number => plotLeft + (n / xTop) * PLOT_W;
  const sy = (v: number): number => plotBottom - (yTop === 0 ? 0 : (v / yTop) * PLOT_H);
  const out: string[] = [`<g class="panel" id="panel-${panel.id}">`];
  out.push(text(x0 + PANEL_W / 2, y0 + 18, panel.title, 'class="panel-title" text-anchor="middle" font-size="13" font-weight="bold"'));
  for (const t of yTicks) {
    const y = sy(t);
    out.push(`<line x1="${px(plotLeft)}" y1="${px(y)}" x2="${px(plotLeft + PLOT_W)}" y2="${px(y)}" stroke="#e4e4e4"/>`);
    out.push(text(plotLeft - 6, y + 4, String(t), 'class="ytick" text-anchor="end"'));
  }
  for (const t of xTicks) {
    out.push(`<line x1="${px(sx(t))}" y1="${px(plotBottom)}" x2="${px(sx(t))}" y2="${px(plotBottom + 4)}" stroke="#000000"/>`);
    out.push(text(sx(t), plotBottom + 16, String(t), 'class="xtick" text-anchor="middle"'));
  }
  out.push(`<line x1="${px(plotLeft)}" y1="${px(plotBottom)}" x2="${px(plotLeft + PLOT_W)}" y2="${px(plotBottom)}" stroke="#000000"/>`);
  out.push(`<line x1="${px(plotLeft)}" y1="${px(plotBottom)}" x2="${px(plotLeft)}" y2="${px(y0 + M.top)}" stroke="#000000"/>`);
  out.push(text(plotLeft + PLOT_W / 2, plotBottom + 36, 'workers (N)', 'class="axis-title" text-anchor="middle"'));
  const yMid = y0 + M.top + PLOT_H / 2;
  out.push(text(x0 + 16, yMid, panel.yTitle, `class="axis-title" text-anchor="middle" transform="rotate(-90 ${px(x0 + 16)} ${px(yMid)})"`));
  if (values.length === 0) out.push(text(plotLeft + PLOT_W / 2, yMid, panel.none, `class="none" text-anchor="middle" fill="${GREY}"`));
  // Each legend starts after the one before it (about 7 px a character at this font size).
  let lx = plotLeft;
  panel.series.forEach((s) => {
    const ly = y0 + 38;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<line x1="${px(lx)}" y1="${px(ly - 4)}" x2="${px(lx + 22)}" y2="${px(ly - 4)}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(text(lx + 27, ly, s.legend, 'class="legend"'));
    lx += 27 + s.legend.length * 7 + 16;
  });
  for (const s of panel.series) {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (s.points.length >= 2) {
      const coords = s.points.map((p) => `${px(sx(p.n))},${px(sy(p.v))}`).join(' ');
      out.push(`<polyline class="${s.id}" points="${coords}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    }
    const others = panel.series.filter((o) => o !== s);
    for (const p of s.points) {
      // Of two values at the same N the lower is labelled below its marker, so the two labels do not collide.
      const below = others.some((o) => o.points.some((q) => q.n === p.n && (q.v > p.v || (q.v === p.v && !o.dashed))));
      const fill = s.dashed ? '#ffffff' : s.color;
      out.push(`<circle class="point ${s.id}" cx="${px(sx(p.n))}" cy="${px(sy(p.v))}" r="3.5" fill="${fill}" stroke="${s.color}" stroke-width="1.5"/>`);
      out.push(text(sx(p.n), sy(p.v) + (below ? 15 : -8), valueLabel(p.v), `class="value ${s.id}" text-anchor="middle" font-size="10" fill="${s.dashed ? GREY : '#000000'}"`));
    }
  }
  out.push('</g>');
  return out.join('\n');
}

function series(rows: readonly CurveRow[], pick: (r: CurveRow) => number | undefined): Series['points'] {
  return rows.flatMap((r) => {
    const v = pick(r);
    return v === undefined ? [] : [{ n: r.workers, v }];
  });
}

/** The curve as SVG text; refuses the points curveRows refuses. */
export function curveSvg(points: Parameters<typeof curveRows>[0]): string {
  const rows = curveRows(points);
  const panels: Panel[] = [
    {
      id: 'scale-out',
      title: 'Scale-out 0 -> N',
      yTitle: 'seconds to N connected',
      none: 'not measured',
      series: [
        { id: 'scale-out', legend: 'scale-out', color: '#1f77b4', dashed: false, points: series(rows, (r) => r.scaleOutSeconds) },
        { id: 'scale-limit', legend: 'limit (same run)', color: GREY, dashed: true, points: series(rows, (r) => r.scaleLimitSeconds) },
      ].filter((s) => !s.dashed || s.points.length > 0),
    },
    {
      id: 'rss',
      title: 'Idle controller RSS',
      yTitle: 'MiB',
      none: 'not measured',
      series: [
        { id: 'rss', legend: 'N connected workers', color: '#2ca02c', dashed: false, points: series(rows, (r) => r.rssMiB) },
        { id: 'rss-base', legend: 'no workers', color: GREY, dashed: true, points: series(rows, (r) => r.rssBaseMiB) },
      ],
    },
    {
      id: 'recovery',
      title: 'Recovery after SIGKILL, N busy',
      yTitle: 'seconds to all re-announced',
      none: 'recovery not measured',
      series: [{ id: 'recovery', legend: 'recovery', color: '#d62728', dashed: false, points: series(rows, (r) => r.recoverySeconds) }],
    },
  ];
  const xTicks = niceTicks(Math.max(...rows.map((r) => r.workers)));
  const width = PANEL_W * panels.length;
  const height = HEADER_H + PANEL_H + FOOTER_H;
  const played = rows.filter((r) => r.playedKubelet).map((r) => r.workers);
  const footer = played.length === 0 ? 'kubelet: real at every N' : `kubelet played by the bench (no real node) at N = ${played.join(', ')}`;
  const title = 'kube-workerpool-controller: how cost grows with the number of workers N';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    // GitHub's dark theme would otherwise draw the black text on near-black.
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 22, title, 'text-anchor="middle" font-size="15" font-weight="bold"'),
    ...panels.map((p, i) => panelSvg(p, i, xTicks)),
    text(M.left, height - 8, footer, `class="footer" fill="${GREY}"`),
    '</svg>',
    '',
  ].join('\n');
}
