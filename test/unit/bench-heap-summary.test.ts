import { describe, expect, test } from 'vitest';
import { summarizeHeap } from '../../bench/heap-summary.js';

/** A snapshot in V8's layout: nodes as flat records of node_fields, names as indexes into strings. */
function snapshot(nodes: [type: number, name: number, size: number][]) {
  return {
    snapshot: { meta: { node_fields: ['type', 'name', 'id', 'self_size', 'edge_count'], node_types: [['hidden', 'array', 'string', 'object', 'code', 'closure', 'native']] as [string[]] }, node_count: nodes.length },
    nodes: nodes.flatMap(([type, name, size], i) => [type, name, i + 1, size, 0]),
    strings: ['', 'MqttClient', 'TLSSocket', 'Secret', 'SSL'],
  };
}

describe('heap snapshot summary', () => {
  test('objects by constructor, natives by name, the rest by type; largest first; the total is every self size', () => {
    const { total, groups } = summarizeHeap(
      snapshot([
        [3, 1, 1000],
        [3, 1, 1000],
        [3, 2, 1500],
        [2, 0, 300],
        [2, 3, 200],
        [6, 4, 4000],
        [0, 0, 10],
      ]),
    );
    expect(total).toBe(8010);
    expect(groups).toEqual([
      { kind: 'native SSL', count: 1, bytes: 4000 },
      { kind: 'MqttClient', count: 2, bytes: 2000 },
      { kind: 'TLSSocket', count: 1, bytes: 1500 },
      { kind: '(string)', count: 2, bytes: 500 },
      { kind: '(hidden)', count: 1, bytes: 10 },
    ]);
  });

  test('a snapshot without self sizes is refused, naming the fields it has', () => {
    const s = snapshot([]);
    s.snapshot.meta.node_fields = ['type', 'name', 'id'];
    expect(() => summarizeHeap(s)).toThrow('heap snapshot: node_fields lack type, name or self_size: type,name,id');
  });
});

describe('per-worker growth between two snapshots', () => {
  test('each kind grows by its difference over the added workers; kinds in only one snapshot count from zero', async () => {
    const { perWorkerGrowth } = await import('../../bench/heap-summary.js');
    const a = [
      { kind: 'MqttClient', count: 100, bytes: 100_000 },
      { kind: '(code)', count: 5000, bytes: 6_000_000 },
      { kind: 'Gone', count: 2, bytes: 2000 },
    ];
    const b = [
      { kind: 'MqttClient', count: 1000, bytes: 1_000_000 },
      { kind: '(code)', count: 5000, bytes: 6_000_000 },
      { kind: 'TLSSocket', count: 900, bytes: 450_000 },
    ];
    expect(perWorkerGrowth(a, b, 900)).toEqual([
      { kind: 'MqttClient', count: 1, bytes: 1000 },
      { kind: 'TLSSocket', count: 1, bytes: 500 },
      { kind: '(code)', count: 0, bytes: 0 },
      { kind: 'Gone', count: -2 / 900, bytes: -2000 / 900 },
    ]);
  });
});
