/**
 * Where a V8 heap snapshot's bytes are: self sizes summed by kind (objects
 * by constructor name, everything else by V8's node type), largest first,
 * with the share per worker when the snapshot holds N workers.
 *
 *   npx tsx bench/heap-summary.ts FILE.heapsnapshot [--workers N] [--top K]
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

function main(argv: string[]): void {
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
