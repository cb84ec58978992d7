/**
 * `tsx bench/profile-summary.ts <file.cpuprofile> [top]`: where a V8 CPU
 * profile (node --cpu-prof, or `npm run bench -- --cpu-prof DIR`) spent its
 * time, by function (self time) and by package or source folder.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function area(url: string): string {
  if (url === '') return '(native/idle/gc)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] as string;
  if (url.startsWith('node:')) return url;
  const src = /\/(src|bench|test)\/(.*)\/[^/]+$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  return url.replace(/^file:\/\//, '');
}

function main(): void {
  const args = process.argv.slice(2);
  // --window FROM,TO: only samples between FROM and TO seconds after the profile's start (negative: before its end).
  const w = args.indexOf('--window');
  const window = w >= 0 ? (args.splice(w, 2)[1] ?? '').split(',').map(Number) : undefined;
  const [file, topArg, ...inclusive] = args;
  if (file === undefined) throw new Error('usage: tsx bench/profile-summary.ts [--window FROM,TO] <file.cpuprofile> [top] [function name ...]');
  const top = Number(topArg ?? 25);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const span = (profile.endTime - profile.startTime) / 1e6;
  const [from, to] = (window ?? [0, span]).map((v) => (v < 0 ? span + v : v)) as [number, number];
  let at = 0;
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    at += (deltas[i] ?? 0) / 1e6;
    if (at < from || at > to) continue;
    total += (deltas[i] ?? 0) / 1000;
    self.set(samples[i] as number, (self.get(samples[i] as number) ?? 0) + (deltas[i] ?? 0) / 1000);
  }
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (n === undefined) continue;
    const name = n.callFrame.functionName || '(anonymous)';
    const key = name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : `${name} ${area(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + ms);
    const a = name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : area(n.callFrame.url);
    byArea.set(a, (byArea.get(a) ?? 0) + ms);
  }
  const busy = total - (byArea.get('(idle)') ?? 0);
  const print = (title: string, m: Map<string, number>): void => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, ms] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${(ms / 1000).toFixed(2).padStart(8)} s ${((100 * ms) / busy).toFixed(1).padStart(5)} %  ${k}\n`);
    }
  };
  process.stdout.write(`${file}: ${window ? `${from.toFixed(1)}-${to.toFixed(1)} s of ` : ''}${(total / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s on the main thread (percentages of that)\n`);
  byArea.delete('(idle)');
  byFn.delete('(idle)');
  print('by area (self time)', byArea);
  print('by function (self time)', byFn);
  if (inclusive.length > 0) {
    // Time spent in (and under) the named functions; nested calls of a named function count once.
    const totals = new Map<string, number>(inclusive.map((name) => [name, 0]));
    const walk = (id: number, inside: Set<string>): void => {
      const n = byId.get(id);
      if (n === undefined) return;
      const name = n.callFrame.functionName;
      const entered = totals.has(name) && !inside.has(name) ? new Set([...inside, name]) : inside;
      const ms = self.get(id) ?? 0;
      for (const k of entered) totals.set(k, (totals.get(k) ?? 0) + ms);
      for (const c of n.children ?? []) walk(c, entered);
    };
    walk(profile.nodes[0]?.id ?? 1, new Set());
    print('inclusive time of the named functions', totals);
  }
}

main();
