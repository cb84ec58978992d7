import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';

/** Reads `<dataDir>/admin-token`, creating it (mode 0600) on first start. */
export async function loadOrCreateAdminToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'admin-token');
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token.length >= 32) return token;
    throw new Error(`${file} holds a token shorter than 32 characters; delete it to get a new one`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFile(file, token + '\n', { mode: 0o600, flag: 'wx' });
  // The umask could have widened the mode on creation.
  await chmod(file, 0o600);
  return token;
}

/** Constant-time check of an `Authorization: Bearer <token>` header. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = Buffer.from(m[1] as string);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
