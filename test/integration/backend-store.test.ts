/** The backend's state: coalesced, durable writes to a journal, folded into an atomic snapshot. */
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { StateStore, type StateData } from '../../src/backend/store.js';
import { stateOnDisk } from '../support/backend-state.js';

/** Runs `fn` with a fresh directory, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-store-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The state another start would read. */
async function reread(dir: string): Promise<StateData> {
  const store = await StateStore.open(dir);
  await store.close();
  return store.data;
}

test('concurrent changes all reach the file, in few writes, readable after reopening', () =>
  inTempDir(async (dir) => {
    const store = await StateStore.open(dir);
    const waits: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) {
      store.data.pools[`P${i}`] = { id: `P${i}`, name: `pool ${i}`, publicKeyPem: 'k', createdAt: 'now' };
      waits.push(store.persist());
    }
    await Promise.all(waits);
    // Coalesced: 200 calls shared at most a couple of writes (one in flight plus one queued).
    expect(new Set(waits).size).toBeLessThanOrEqual(2);
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
    expect((await stat(store.journalFile)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['state.journal', 'state.json']);
    // Every change made before a persist() call is on disk once that call resolves: a process killed now loses none.
    expect(Object.keys((await stateOnDisk(dir)).pools)).toHaveLength(200);

    store.data.nonces['P1/n'] = Date.now() - 1;
    store.data.nonces['P1/m'] = Date.now() + 60_000;
    await store.persist();
    await store.close();
    const reopened = await reread(dir);
    expect(Object.keys(reopened.pools)).toHaveLength(200);
    // Expired nonces are pruned on write.
    expect(Object.keys(reopened.nonces)).toEqual(['P1/m']);
  }));

test('an unreadable state file stops the backend instead of starting empty', () =>
  inTempDir(async (dir) => {
    await writeFile(path.join(dir, 'state.json'), '{"version": 7}');
    await expect(StateStore.open(dir)).rejects.toThrow(/unsupported state version 7/);
    await writeFile(path.join(dir, 'state.json'), '{trunc');
    await expect(StateStore.open(dir)).rejects.toThrow(/JSON/);
  }));

test('a change is one journal line of its own records, not a rewrite of the snapshot', () =>
  inTempDir(async (dir) => {
    const store = await StateStore.open(dir);
    for (let i = 0; i < 50; i++) store.data.pools[`P${i}`] = { id: `P${i}`, name: `pool ${i}`, publicKeyPem: 'k', createdAt: 'now' };
    await store.persist();
    const snapshot = await readFile(store.file, 'utf8');
    store.data.pools.P7 = { id: 'P7', name: 'renamed', publicKeyPem: 'k', createdAt: 'now' };
    delete store.data.pools.P8;
    await store.persist();
    expect(await readFile(store.file, 'utf8')).toBe(snapshot);
    const lines = (await readFile(store.journalFile, 'utf8')).split('\n').filter((l) => l !== '');
    expect(JSON.parse(lines.at(-1) ?? '')).toEqual({ q: 2, set: [['pools', 'P7', { id: 'P7', name: 'renamed', publicKeyPem: 'k', createdAt: 'now' }]], del: [['pools', 'P8']] });
    // Nothing changed: nothing written.
    await store.persist();
    expect((await readFile(store.journalFile, 'utf8')).split('\n').filter((l) => l !== '')).toHaveLength(2);

    // Reopened: the journal replayed, folded into a new snapshot, emptied.
    await store.close();
    const reopened = await StateStore.open(dir);
    await reopened.close();
    expect(reopened.data.pools.P7?.name).toBe('renamed');
    expect(reopened.data.pools.P8).toBeUndefined();
    expect(Object.keys(reopened.data.pools)).toHaveLength(49);
    expect(await readFile(reopened.journalFile, 'utf8')).toBe('');
    expect((JSON.parse(await readFile(reopened.file, 'utf8')) as { journalSeq: number }).journalSeq).toBe(2);
  }));

test('a journal bigger than the snapshot is folded into it', () =>
  inTempDir(async (dir) => {
    const store = await StateStore.open(dir);
    const key = 'k'.repeat(64 * 1024);
    store.data.pools.P = { id: 'P', name: 'pool', publicKeyPem: key, createdAt: '0' };
    await store.persist();
    // Each write changes a 64 KiB record: 16 of them pass the 1 MiB floor.
    let folded = false;
    for (let i = 1; i <= 20 && !folded; i++) {
      store.data.pools.P = { id: 'P', name: 'pool', publicKeyPem: key, createdAt: String(i) };
      await store.persist();
      folded = (await stat(store.journalFile)).size === 0;
    }
    expect(folded).toBe(true);
    expect((JSON.parse(await readFile(store.file, 'utf8')) as { pools: { P: { createdAt: string } } }).pools.P.createdAt).not.toBe('0');
    store.data.pools.P = { id: 'P', name: 'pool', publicKeyPem: 'small', createdAt: 'last' };
    await store.persist();
    expect((await stat(store.journalFile)).size).toBeGreaterThan(0);
    await store.close();
    expect((await reread(dir)).pools.P).toEqual({ id: 'P', name: 'pool', publicKeyPem: 'small', createdAt: 'last' });
  }));

test('after a crash: a torn last journal line is dropped, the lines before it kept; a damaged earlier line stops the backend', () =>
  inTempDir(async (dir) => {
    const store = await StateStore.open(dir);
    store.data.pools.A = { id: 'A', name: 'a', publicKeyPem: 'k', createdAt: 'now' };
    await store.persist();
    store.data.pools.B = { id: 'B', name: 'b', publicKeyPem: 'k', createdAt: 'now' };
    await store.persist();
    // A process killed in the middle of its third append.
    await store.close();
    await appendFile(store.journalFile, '{"q":3,"set":[["pools","C",{"id":"C","na');
    expect(Object.keys((await reread(dir)).pools).sort()).toEqual(['A', 'B']);

    await writeFile(path.join(dir, 'state.journal'), '{"q":9,"set":[["pools"\n{"q":10}\n');
    await expect(StateStore.open(dir)).rejects.toThrow(`${path.join(dir, 'state.journal')}: line 1 is not a journal entry`);
  }));

test('a persist after close writes a snapshot, which a journal left on disk does not undo', () =>
  inTempDir(async (dir) => {
    const store = await StateStore.open(dir);
    store.data.pools.A = { id: 'A', name: 'a', publicKeyPem: 'k', createdAt: 'now' };
    await store.persist();
    await store.close();
    const journal = await readFile(store.journalFile, 'utf8');
    expect(journal).toContain('"A"');
    delete store.data.pools.A;
    await store.persist();
    expect(await readFile(store.journalFile, 'utf8')).toBe(journal);
    expect((await reread(dir)).pools).toEqual({});
  }));
