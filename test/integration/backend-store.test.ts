/** The backend's state file: coalesced, atomic, durable writes. */
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { StateStore } from '../../src/backend/store.js';

test('concurrent changes all reach the file, in few writes, readable after reopening', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-store-'));
  try {
    const store = await StateStore.open(dir);
    const waits: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) {
      store.data.pools[`P${i}`] = { id: `P${i}`, name: `pool ${i}`, publicKeyPem: 'k', createdAt: 'now' };
      waits.push(store.persist());
    }
    await Promise.all(waits);
    // Every change made before a persist() call is on disk once that call resolves.
    const onDisk = JSON.parse(await readFile(store.file, 'utf8')) as { pools: Record<string, unknown> };
    expect(Object.keys(onDisk.pools)).toHaveLength(200);
    // Coalesced: 200 calls shared at most a couple of writes (one in flight plus one queued).
    expect(new Set(waits).size).toBeLessThanOrEqual(2);
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['state.json']);

    store.data.nonces['P1/n'] = Date.now() - 1;
    store.data.nonces['P1/m'] = Date.now() + 60_000;
    await store.persist();
    const reopened = await StateStore.open(dir);
    expect(Object.keys(reopened.data.pools)).toHaveLength(200);
    // Expired nonces are pruned on write.
    expect(Object.keys(reopened.data.nonces)).toEqual(['P1/m']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unreadable state file stops the backend instead of starting empty', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-store-'));
  try {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, 'state.json'), '{"version": 7}');
    await expect(StateStore.open(dir)).rejects.toThrow(/unsupported state version 7/);
    await writeFile(path.join(dir, 'state.json'), '{trunc');
    await expect(StateStore.open(dir)).rejects.toThrow(/JSON/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
