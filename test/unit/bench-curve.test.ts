import { describe, expect, test } from 'vitest';
import { CURVE_COLUMNS, curveMarkdown, curveRows, curveSvg, type CurveMeta, type CurvePoint } from '../../bench/curve.js';

const meta: CurveMeta = { date: '2026-12-01T09:30:00Z', command: 'npm run bench -- --curve', cores: 2, controller: 'compiled' };

// Given out of order: everything downstream must come out sorted by N.
const points: CurvePoint[] = [
  { workers: 2000, scaleOutSeconds: 19.6, scaleLimitSeconds: 16, rssMiB: 224, rssBaseMiB: 114, recoverySeconds: 9.5, playedKubelet: true },
  { workers: 100, scaleOutSeconds: 2.5, scaleLimitSeconds: 2, rssMiB: 119, rssBaseMiB: 113, recoverySeconds: 1.69, playedKubelet: false },
  { workers: 1000, scaleOutSeconds: 12, scaleLimitSeconds: 10, rssMiB: 163, rssBaseMiB: 113, recoverySeconds: 4, playedKubelet: true },
  { workers: 300, scaleOutSeconds: 4.2, scaleLimitSeconds: 3.5, rssMiB: 131, rssBaseMiB: 113.5, recoverySeconds: 2.1, playedKubelet: false },
];

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return 'no error';
}

/** The part of the SVG holding one panel (panels hold no nested groups). */
function panel(svg: string, id: string): string {
  const m = new RegExp(`<g class="panel" id="panel-${id}">([\\s\\S]*?)</g>`).exec(svg);
  if (m === null) throw new Error(`no panel ${id}`);
  return m[1] as string;
}

const count = (s: string, re: RegExp): number => [...s.matchAll(re)].length;
const texts = (s: string, cls: string): string[] => [...s.matchAll(new RegExp(`<text [^>]*class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => m[1] as string);

/** Problems that would stop an XML parser: unbalanced or crossed tags, a bare & or a stray < or > in text. */
function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name = '', , selfClosing] = m;
    if (selfClosing === '/') continue;
    if (close === '/') {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}>`);
    } else stack.push(name);
  }
  if (stack.length > 0) problems.push(`unclosed ${stack.join(', ')}`);
  const outside = xml.replace(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g, '');
  if (/[<>]/.test(outside)) problems.push(`stray < or > in text: ${/.{0,20}[<>].{0,20}/.exec(outside)?.[0]}`);
  if (/&(?!(?:amp|lt|gt|quot|apos|#\d+);)/.test(xml)) problems.push('bare &');
  return problems;
}

describe('curveRows', () => {
  test('derives per-worker time and memory, sorted by N', () => {
    const rows = curveRows(points);
    expect(rows.map((r) => r.workers)).toEqual([100, 300, 1000, 2000]);
    const [n100, , n1000, n2000] = rows;
    expect(n100?.scaleMsPerWorker).toBeCloseTo(25, 9); // 2.5 s / 100
    expect(n100?.scaleRatio).toBeCloseTo(1.25, 9);
    expect(n100?.mibPerWorker).toBeCloseTo(0.06, 9); // (119 - 113) / 100
    expect(n100?.recoveryMsPerWorker).toBeCloseTo(16.9, 9);
    expect(n1000?.scaleMsPerWorker).toBeCloseTo(12, 9);
    expect(n1000?.mibPerWorker).toBeCloseTo(0.05, 9);
    expect(n1000?.recoveryMsPerWorker).toBeCloseTo(4, 9);
    expect(n2000?.scaleRatio).toBeCloseTo(1.225, 9);
    expect(n2000?.mibPerWorker).toBeCloseTo(0.055, 9); // (224 - 114) / 2000
    expect(n2000?.recoveryMsPerWorker).toBeCloseTo(4.75, 9);
  });

  test('leaves out the ratio and the recovery per worker when their measure is absent', () => {
    const [row] = curveRows([{ workers: 100, scaleOutSeconds: 3, rssMiB: 120, rssBaseMiB: 110, playedKubelet: false }]);
    expect(row).not.toHaveProperty('scaleRatio');
    expect(row).not.toHaveProperty('recoveryMsPerWorker');
    expect(row?.scaleMsPerWorker).toBeCloseTo(30, 9);
    expect(row?.mibPerWorker).toBeCloseTo(0.1, 9);
  });
});

describe('curveMarkdown', () => {
  const md = curveMarkdown(points, meta);
  const tableRows = md.split('\n').filter((l) => l.startsWith('|')).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));

  test('has a heading with the sizes and date, then the command', () => {
    const lines = md.split('\n');
    expect(lines[0]).toBe('### How cost grows with N = 100, 300, 1000, 2000, controller compiled (2026-12-01)');
    expect(lines[2]).toMatch(/^`npm run bench -- --curve` on 2 cores; measured 2026-12-01T09:30:00Z\./);
  });

  test('puts the columns in order and one row per N, sorted', () => {
    expect(tableRows[0]).toEqual([
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
    ]);
    expect(tableRows[0]).toEqual([...CURVE_COLUMNS]);
    expect(tableRows[1]?.every((c) => c === '---:')).toBe(true);
    expect(tableRows.slice(2).map((r) => r[0])).toEqual(['100', '300', '1000', '2000']);
    expect(tableRows[2]).toEqual(['100', '2.50', '2.00', '1.25', '25.0', '119.0', '113.0', '0.060', '1.69', '16.9', 'real']);
    expect(tableRows[4]).toEqual(['1000', '12.00', '10.00', '1.20', '12.0', '163.0', '113.0', '0.050', '4.00', '4.0', 'played']);
  });

  test('says where the kubelet was played and links the SVG', () => {
    expect(md).toContain('Kubelet: real at N = 100, 300; played by the bench (no real node) at N = 1000, 2000.');
    expect(md.trimEnd().split('\n').at(-1)).toMatch(/^!\[[^\]]+\]\(bench-curve\.svg\)$/);
  });

  test('shows an absent limit or recovery as "-", never NaN', () => {
    const partial = curveMarkdown(
      [
        { workers: 100, scaleOutSeconds: 2, rssMiB: 119, rssBaseMiB: 113, playedKubelet: false },
        { workers: 1000, scaleOutSeconds: 12, scaleLimitSeconds: 10, rssMiB: 163, rssBaseMiB: 113, recoverySeconds: 4, playedKubelet: false },
      ],
      meta,
    );
    const row = partial.split('\n').find((l) => l.startsWith('| 100 |'));
    expect(row?.split('|').slice(1, -1).map((c) => c.trim())).toEqual(['100', '2.00', '-', '-', '20.0', '119.0', '113.0', '0.060', '-', '-', 'real']);
    expect(partial).not.toMatch(/NaN|undefined|Infinity/);
    expect(partial).toContain('Kubelet: real at every N.');
  });

  test('keeps a command holding backticks in one code span', () => {
    const text = curveMarkdown(points, { ...meta, command: 'KWC=`date` npm run bench -- --curve' });
    expect(text.split('\n')[2]).toMatch(/^``KWC=`date` npm run bench -- --curve`` on 2 cores/);
  });
});

describe('curveSvg', () => {
  const svg = curveSvg(points);

  test('is well-formed XML with no NaN', () => {
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    // Self-contained: nothing fetched when GitHub shows it.
    expect(svg).not.toMatch(/<script|@import|href=|url\(/);
  });

  test('marks and labels every point of every series, the references dashed', () => {
    const scale = panel(svg, 'scale-out');
    expect(count(scale, /<circle class="point scale-out"/g)).toBe(4);
    expect(count(scale, /<circle class="point scale-limit"/g)).toBe(4);
    expect(texts(scale, 'value scale-out')).toEqual(['2.50', '4.20', '12.0', '19.6']);
    expect(texts(scale, 'value scale-limit')).toEqual(['2.00', '3.50', '10.0', '16.0']);
    expect(scale).toMatch(/<polyline class="scale-limit"[^>]*stroke-dasharray/);
    expect(scale).not.toMatch(/<polyline class="scale-out"[^>]*stroke-dasharray/);
    const rss = panel(svg, 'rss');
    expect(count(rss, /<circle class="point rss"/g)).toBe(4);
    expect(count(rss, /<circle class="point rss-base"/g)).toBe(4);
    expect(texts(rss, 'value rss')).toEqual(['119', '131', '163', '224']);
    expect(rss).toMatch(/<polyline class="rss-base"[^>]*stroke-dasharray/);
    const recovery = panel(svg, 'recovery');
    expect(count(recovery, /<circle class="point recovery"/g)).toBe(4);
    expect(texts(recovery, 'value recovery')).toEqual(['1.69', '2.10', '4.00', '9.50']);
    expect(count(svg, /<polyline /g)).toBe(5);
  });

  test('draws the lines through the points in order of N', () => {
    const line = /<polyline class="scale-out" points="([^"]+)"/.exec(panel(svg, 'scale-out'))?.[1] ?? '';
    const xs = line.split(' ').map((p) => Number(p.split(',')[0]));
    expect(xs).toHaveLength(4);
    expect([...xs].sort((a, b) => a - b)).toEqual(xs);
  });

  test('gives each axis round ticks from 0 up to at least the largest value', () => {
    expect(texts(panel(svg, 'scale-out'), 'ytick')).toEqual(['0', '5', '10', '15', '20']);
    expect(texts(panel(svg, 'rss'), 'ytick')).toEqual(['0', '50', '100', '150', '200', '250']);
    expect(texts(panel(svg, 'recovery'), 'ytick')).toEqual(['0', '2', '4', '6', '8', '10']);
    for (const id of ['scale-out', 'rss', 'recovery']) expect(texts(panel(svg, id), 'xtick')).toEqual(['0', '500', '1000', '1500', '2000']);
    const small = curveSvg([{ workers: 30, scaleOutSeconds: 0.7, rssMiB: 100, rssBaseMiB: 99, playedKubelet: false }]);
    expect(texts(panel(small, 'scale-out'), 'ytick')).toEqual(['0', '0.2', '0.4', '0.6', '0.8']);
    expect(texts(panel(small, 'scale-out'), 'xtick')).toEqual(['0', '10', '20', '30']);
  });

  test('keeps every marker inside its plot', () => {
    for (const id of ['scale-out', 'rss', 'recovery']) {
      const p = panel(svg, id);
      const gridYs = [...p.matchAll(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" stroke="#e4e4e4"\/>/g)].map((m) => Number(m[1]));
      const top = Math.min(...gridYs);
      const bottom = Math.max(...gridYs);
      for (const m of p.matchAll(/<circle [^>]*cy="([\d.]+)"/g)) {
        expect(Number(m[1])).toBeGreaterThanOrEqual(top);
        expect(Number(m[1])).toBeLessThanOrEqual(bottom);
      }
    }
  });

  test('skips an absent recovery or limit without NaN', () => {
    const partial = curveSvg([
      { workers: 100, scaleOutSeconds: 2, rssMiB: 119, rssBaseMiB: 113, playedKubelet: false },
      { workers: 300, scaleOutSeconds: 4, rssMiB: 130, rssBaseMiB: 113, recoverySeconds: 2, playedKubelet: false },
      { workers: 1000, scaleOutSeconds: 12, rssMiB: 163, rssBaseMiB: 113, recoverySeconds: 4, playedKubelet: true },
    ]);
    expect(partial).not.toMatch(/NaN|undefined|Infinity/);
    expect(xmlProblems(partial)).toEqual([]);
    expect(count(panel(partial, 'recovery'), /<circle /g)).toBe(2);
    expect(texts(panel(partial, 'recovery'), 'value recovery')).toEqual(['2.00', '4.00']);
    expect(panel(partial, 'scale-out')).not.toContain('scale-limit');
    expect(partial).toContain('kubelet played by the bench (no real node) at N = 1000');

    const none = curveSvg([{ workers: 100, scaleOutSeconds: 2, rssMiB: 119, rssBaseMiB: 113, playedKubelet: false }]);
    expect(none).not.toMatch(/NaN|undefined|Infinity/);
    expect(count(panel(none, 'recovery'), /<circle /g)).toBe(0);
    expect(texts(panel(none, 'recovery'), 'none')).toEqual(['recovery not measured']);
  });
});

describe('bad points', () => {
  const good: CurvePoint = { workers: 100, scaleOutSeconds: 2, rssMiB: 119, rssBaseMiB: 113, playedKubelet: false };
  const cases: Array<[string, CurvePoint[], string]> = [
    ['no points', [], 'curve: no points; expected one per N'],
    ['a duplicate N', [good, { ...good, workers: 300 }, { ...good }], 'curve: points 1 and 3 both have workers 100'],
    ['N = 0', [{ ...good, workers: 0 }], 'curve: point 1 has workers 0; expected a positive integer'],
    ['a negative N', [good, { ...good, workers: -5 }], 'curve: point 2 has workers -5; expected a positive integer'],
    ['a fractional N', [{ ...good, workers: 1.5 }], 'curve: point 1 has workers 1.5; expected a positive integer'],
    ['an RSS of NaN', [good, { ...good, workers: 300, rssMiB: Number.NaN }], 'curve: point 2 has rssMiB NaN; expected a finite number >= 0'],
    ['a negative scale-out', [{ ...good, scaleOutSeconds: -1 }], 'curve: point 1 has scaleOutSeconds -1; expected a finite number >= 0'],
    ['an infinite recovery', [{ ...good, recoverySeconds: Number.POSITIVE_INFINITY }], 'curve: point 1 has recoverySeconds Infinity; expected a finite number >= 0'],
    ['a negative base', [{ ...good, rssBaseMiB: -3 }], 'curve: point 1 has rssBaseMiB -3; expected a finite number >= 0'],
    ['a zero limit', [{ ...good, scaleLimitSeconds: 0 }], 'curve: point 1 has scaleLimitSeconds 0; expected a finite number > 0'],
  ];

  test.each(cases)('%s is refused with the field and value named', (_, bad, message) => {
    expect(messageOf(() => curveRows(bad))).toBe(message);
    expect(messageOf(() => curveSvg(bad))).toBe(message);
    expect(messageOf(() => curveMarkdown(bad, meta))).toBe(message);
  });

  test('a number read as a string is quoted, not mistaken for one', () => {
    const fromJson = JSON.parse('[{"workers":"100","scaleOutSeconds":2,"rssMiB":119,"rssBaseMiB":113,"playedKubelet":false}]') as CurvePoint[];
    expect(messageOf(() => curveRows(fromJson))).toBe('curve: point 1 has workers "100"; expected a positive integer');
  });

  test('bad meta is refused too', () => {
    expect(messageOf(() => curveMarkdown([good], { ...meta, cores: 0 }))).toBe('curve: meta.cores 0; expected a positive integer');
    expect(messageOf(() => curveMarkdown([good], { ...meta, command: ' ' }))).toBe('curve: meta.command " "; expected a non-empty string');
  });
});
