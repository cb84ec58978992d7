/**
 * Where a V8 heap snapshot's bytes are: self sizes summed by kind (objects
 * by constructor name, everything else by V8's node type), largest first,
 * with the share per worker when the snapshot holds N workers. Given two
 * snapshots of the same controller at N1 and N2 workers, what each kind
 * grows by per worker (their difference over N2 - N1): the per-worker cost
 * without the fixed part.
 *
 *   npx tsx bench/heap-summary.ts FILE.heapsnapshot [--workers N] [--top K]
 *   npx tsx bench/heap-summary.ts A.heapsnapshot:N1 B.heapsnapshot:N2 [--top K]
 *
 * Only the V8 heap is in a snapshot: what OpenSSL, libuv and other native
 * code allocate (TLS state, socket buffers) is the process's RSS minus this.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

export interface HeapGroup {
  kind: string;
  count: number;
  bytes: number;
}

/** Self sizes grouped by kind, largest first, and their total. */
export function summarizeHeap(snapshot: Snapshot): { total: number; groups: HeapGroup[] } {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  if (typeAt < 0 || nameAt < 0 || sizeAt < 0) throw new Error(`heap snapshot: node_fields lack type, name or self_size: ${fields.join(',')}`);
  const groups = new Map<string, HeapGroup>();
  let total = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt] as number] ?? '?';
    const size = snapshot.nodes[i + sizeAt] as number;
    // Objects and native objects by their name (the constructor's); strings, code, arrays and the rest by type.
    const kind = type === 'object' || type === 'native' ? `${type === 'native' ? 'native ' : ''}${snapshot.strings[snapshot.nodes[i + nameAt] as number] ?? '?'}` : `(${type})`;
    const g = groups.get(kind) ?? { kind, count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(kind, g);
    total += size;
  }
  return { total, groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes) };
}

/** Per kind, bytes and count of `b` minus `a`, over `workers` (N2 - N1); the largest growth first. */
export function perWorkerGrowth(a: readonly HeapGroup[], b: readonly HeapGroup[], workers: number): HeapGroup[] {
  const before = new Map(a.map((g) => [g.kind, g]));
  const kinds = new Set([...a.map((g) => g.kind), ...b.map((g) => g.kind)]);
  const after = new Map(b.map((g) => [g.kind, g]));
  return [...kinds]
    .map((kind) => ({
      kind,
      count: ((after.get(kind)?.count ?? 0) - (before.get(kind)?.count ?? 0)) / workers,
      bytes: ((after.get(kind)?.bytes ?? 0) - (before.get(kind)?.bytes ?? 0)) / workers,
    }))
    .sort((x, y) => y.bytes - x.bytes);
}

function compare(specs: string[], top: number): void {
  const [a, b] = specs.map((spec) => {
    const at = spec.lastIndexOf(':');
    const workers = Number(spec.slice(at + 1));
    if (at < 0 || !Number.isInteger(workers) || workers < 0) throw new Error(`expected FILE.heapsnapshot:N, got ${spec}`);
    return { workers, ...summarizeHeap(JSON.parse(readFileSync(spec.slice(0, at), 'utf8')) as Snapshot) };
  }) as [{ workers: number; total: number; groups: HeapGroup[] }, { workers: number; total: number; groups: HeapGroup[] }];
  const n = b.workers - a.workers;
  if (n <= 0) throw new Error(`the second snapshot must hold more workers than the first (${a.workers}, ${b.workers})`);
  const kib = (bytes: number): string => (bytes / 1024).toFixed(2);
  process.stdout.write(`V8 heap: ${(a.total / 1048576).toFixed(2)} MiB at ${a.workers} workers, ${(b.total / 1048576).toFixed(2)} MiB at ${b.workers}: ${kib((b.total - a.total) / n)} KiB per worker\n\n`);
  process.stdout.write(`${'kind'.padEnd(48)} ${'KiB/worker'.padStart(10)} ${'objects/worker'.padStart(15)}\n`);
  for (const g of perWorkerGrowth(a.groups, b.groups, n).slice(0, top)) {
    process.stdout.write(`${g.kind.slice(0, 48).padEnd(48)} ${kib(g.bytes).padStart(10)} ${g.count.toFixed(1).padStart(15)}\n`);
  }
}

function main(argv: string[]): void {
  const pairs = argv.filter((a) => /\.heapsnapshot:\d+$/.test(a));
  if (pairs.length === 2) {
    const i = argv.indexOf('--top');
    compare(pairs, i < 0 ? 30 : Number(argv[i + 1]));
    return;
  }
  const file = argv.find((a) => !a.startsWith('--'));
  const opt = (name: string, dflt: number): number => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive whole number, got ${argv[i + 1] ?? '(nothing)'}`);
    return v;
  };
  if (file === undefined) throw new Error('usage: npx tsx bench/heap-summary.ts FILE.heapsnapshot [--workers N] [--top K]');
  const workers = opt('workers', 0);
  const top = opt('top', 30);
  const { total, groups } = summarizeHeap(JSON.parse(readFileSync(file, 'utf8')) as Snapshot);
  const mib = (b: number): string => (b / 1048576).toFixed(2);
  const perWorker = (b: number): string => (workers > 0 ? `${(b / workers / 1024).toFixed(2)} KiB/worker` : '');
  process.stdout.write(`V8 heap in the snapshot: ${mib(total)} MiB${workers > 0 ? ` (${perWorker(total)} if all of it were per worker)` : ''}\n\n`);
  process.stdout.write(`${'kind'.padEnd(48)} ${'count'.padStart(9)} ${'MiB'.padStart(8)}  ${workers > 0 ? 'per worker' : ''}\n`);
  for (const g of groups.slice(0, top)) {
    process.stdout.write(`${g.kind.slice(0, 48).padEnd(48)} ${String(g.count).padStart(9)} ${mib(g.bytes).padStart(8)}  ${perWorker(g.bytes)}${workers > 0 ? ` (${(g.count / workers).toFixed(1)} per worker)` : ''}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
