import { describe, expect, test } from 'vitest';
import { diffState, replayJournal, writtenStateOf } from '../../src/backend/state-journal.js';
import type { StateData } from '../../src/backend/store.js';

const empty = (): StateData => ({ version: 1, pools: {}, workers: {}, runs: {}, nonces: {}, revoked: {}, retiredWorkers: {}, crlNumber: 0 });
const pool = (id: string) => ({ id, name: `pool ${id}`, publicKeyPem: 'k', createdAt: 'then' });

describe('the state journal', () => {
  test('a diff holds exactly the records that changed, were added or removed, and nothing when nothing did', () => {
    const data = empty();
    data.pools.A = pool('A');
    data.pools.B = pool('B');
    data.nonces['A/n1'] = 5;
    const written = writtenStateOf(data);
    expect(diffState(data, written, 1)).toBeUndefined();

    (data.pools.A as { name: string }).name = 'renamed';
    delete data.pools.B;
    data.retiredWorkers.W = 'A';
    data.crlNumber = 3;
    const diff = diffState(data, written, 7);
    expect(diff?.changes).toBe(4);
    expect(diff?.line.endsWith('\n')).toBe(true);
    expect(JSON.parse(diff?.line ?? '')).toEqual({
      q: 7,
      set: [['pools', 'A', { ...pool('A'), name: 'renamed' }], ['retiredWorkers', 'W', 'A']],
      del: [['pools', 'B']],
      crlNumber: 3,
    });
    // Not remembered until the line is durable: the same diff again.
    expect(diffState(data, written, 8)?.changes).toBe(4);
    diff?.apply();
    expect(diffState(data, written, 8)).toBeUndefined();
  });

  test('a key set to undefined counts as removed, as it would be in the snapshot', () => {
    const data = empty();
    data.pools.A = pool('A');
    const written = writtenStateOf(data);
    (data.pools as Record<string, unknown>).A = undefined;
    expect(JSON.parse(diffState(data, written, 1)?.line ?? '')).toEqual({ q: 1, del: [['pools', 'A']] });
  });

  test('replaying the diffs over the snapshot gives the state that made them', () => {
    const data = empty();
    const written = writtenStateOf(data);
    const lines: string[] = [];
    const step = (change: () => void) => {
      change();
      const diff = diffState(data, written, lines.length + 1);
      if (diff === undefined) throw new Error('no change');
      lines.push(diff.line);
      diff.apply();
    };
    step(() => (data.pools.A = pool('A')));
    step(() => (data.nonces['A/x/y'] = 9));
    step(() => delete data.nonces['A/x/y']);
    step(() => (data.crlNumber = 2));
    const replayed = empty();
    expect(replayJournal(replayed, lines.join(''), 0, 'j')).toEqual({ lastSeq: 4, replayed: 4 });
    expect(replayed).toEqual(data);
  });

  test('entries the snapshot already holds are skipped: a crash between snapshot and emptying the journal changes nothing', () => {
    const snapshot = empty();
    snapshot.pools.B = pool('B');
    const journal = `${JSON.stringify({ q: 1, set: [['pools', 'A', pool('A')]] })}\n${JSON.stringify({ q: 2, del: [['pools', 'A']] })}\n`;
    expect(replayJournal(snapshot, journal, 2, 'j')).toEqual({ lastSeq: 2, replayed: 0 });
    expect(Object.keys(snapshot.pools)).toEqual(['B']);
  });

  test('a torn last line (a write that never finished, never acknowledged) is dropped', () => {
    const data = empty();
    const journal = `${JSON.stringify({ q: 1, set: [['pools', 'A', pool('A')]] })}\n{"q":2,"set":[["pools","B",{"id":"B","na`;
    expect(replayJournal(data, journal, 0, 'j')).toEqual({ lastSeq: 1, replayed: 1 });
    expect(Object.keys(data.pools)).toEqual(['A']);
  });

  test('a damaged line before the last one is an error naming the file and line, not a silent loss', () => {
    const good = JSON.stringify({ q: 2, set: [['pools', 'A', pool('A')]] });
    expect(() => replayJournal(empty(), `{"q":1,"se\n${good}\n`, 0, '/data/state.journal')).toThrow(/^\/data\/state\.journal: line 1 is not a journal entry \(.*JSON.*\); the state cannot be read safely$/);
    expect(() => replayJournal(empty(), `${good}\n{"q":3,"set":[["secrets","A",1]]}\n${good}\n`, 0, 'j')).toThrow('j: line 2 is not a journal entry (a set that is not [collection, key, record]); the state cannot be read safely');
    expect(() => replayJournal(empty(), `{"set":[]}\n${good}\n`, 0, 'j')).toThrow('j: line 1 is not a journal entry (no sequence number)');
    expect(() => replayJournal(empty(), `{"q":1,"del":[["pools"]]}\n${good}\n`, 0, 'j')).toThrow('j: line 1 is not a journal entry (a del that is not [collection, key])');
    expect(() => replayJournal(empty(), `{"q":1,"crlNumber":"x"}\n${good}\n`, 0, 'j')).toThrow('j: line 1 is not a journal entry (a crlNumber that is not an integer)');
    expect(() => replayJournal(empty(), `${good}\n${good}\n`, 0, 'j')).toThrow('j: line 2 has sequence 2 after 2; the state cannot be read safely');
  });
});
