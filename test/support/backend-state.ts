import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StateStore, type StateData } from '../../src/backend/store.js';

/**
 * The state a backend started on `dataDir` would read now, as if the running
 * one were killed at this instant: its snapshot and journal copied aside and
 * opened there, leaving the running backend's files alone.
 */
export async function stateOnDisk(dataDir: string): Promise<StateData> {
  const copy = await mkdtemp(path.join(os.tmpdir(), 'wpc-state-copy-'));
  try {
    for (const name of ['state.json', 'state.journal']) {
      await copyFile(path.join(dataDir, name), path.join(copy, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    const store = await StateStore.open(copy);
    await store.close();
    return store.data;
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}
