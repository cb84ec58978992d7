/**
 * A reproducible tar writer for image layers: entries in the order given
 * (callers sort them), owner and group as given (root unless said
 * otherwise), modification time 0, no user or group names, POSIX ustar with
 * PAX records for paths longer than ustar allows. The same entries give the
 * same bytes, hence the same digest, on any machine.
 */
import { closeSync, createReadStream, fstatSync, openSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';

export type TarEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode: number; readonly uid?: number; readonly gid?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string }
  | {
      readonly type: 'file';
      readonly path: string;
      readonly mode: number;
      readonly uid?: number;
      readonly gid?: number;
      /** The content, or the file on disk to copy it from. */
      readonly content: Buffer | { readonly fromFile: string };
    };

export interface WrittenBlob {
  /** `sha256:<hex>` of the bytes written. */
  digest: string;
  size: number;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function pathBytes(path: string): Buffer {
  return Buffer.from(path, 'utf8');
}

/** A PAX `key=value` record, whose length prefix counts itself. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, 'utf8');
}

function header(fields: { name: string; mode: number; uid: number; gid: number; size: number; typeflag: string; linkname?: string }): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  h.write(fields.name, 0, 100, 'utf8');
  h.write(octal(fields.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(fields.uid, 8), 108, 8, 'ascii');
  h.write(octal(fields.gid, 8), 116, 8, 'ascii');
  h.write(octal(fields.size, 12), 124, 12, 'ascii');
  h.write(octal(0, 12), 136, 12, 'ascii');
  h.fill(' ', 148, 156);
  h.write(fields.typeflag, 156, 1, 'ascii');
  if (fields.linkname !== undefined) h.write(fields.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7), 148, 7, 'ascii');
  return h;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest, 0);
}

/** Streams tar bytes to a file while hashing them. */
class TarFile {
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  private size = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'w', 0o644);
  }

  write(buf: Buffer): void {
    if (buf.length === 0) return;
    writeSync(this.fd, buf);
    this.hash.update(buf);
    this.size += buf.length;
  }

  close(): WrittenBlob {
    closeSync(this.fd);
    return { digest: `sha256:${this.hash.digest('hex')}`, size: this.size };
  }
}

async function copyFile(out: TarFile, from: string, expectedSize: number): Promise<void> {
  let copied = 0;
  for await (const chunk of createReadStream(from, { highWaterMark: 1 << 20 })) {
    out.write(chunk as Buffer);
    copied += (chunk as Buffer).length;
  }
  if (copied !== expectedSize) throw new Error(`${from} changed while it was being archived (${expectedSize} -> ${copied} bytes)`);
}

function sizeOf(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

/** Writes `entries` as a tar file at `path` and returns its digest and size. */
export async function writeTar(path: string, entries: readonly TarEntry[]): Promise<WrittenBlob> {
  const out = new TarFile(path);
  try {
    for (const entry of entries) {
      const name = entry.path.replace(/^\/+/, '');
      if (name === '') throw new Error('a tar entry needs a path');
      const typeflag = entry.type === 'dir' ? '5' : entry.type === 'symlink' ? '2' : '0';
      const tarName = entry.type === 'dir' ? `${name}/` : name;
      const linkname = entry.type === 'symlink' ? entry.target : undefined;
      const size = entry.type === 'file' ? (Buffer.isBuffer(entry.content) ? entry.content.length : sizeOf(entry.content.fromFile)) : 0;
      const long = pathBytes(tarName).length > 100;
      const longLink = linkname !== undefined && pathBytes(linkname).length > 100;
      if (long || longLink) {
        const pax = Buffer.concat([...(long ? [paxRecord('path', tarName)] : []), ...(longLink ? [paxRecord('linkpath', linkname)] : [])]);
        out.write(header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: pax.length, typeflag: 'x' }));
        out.write(pax);
        out.write(padding(pax.length));
      }
      const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
      const uid = entry.type === 'symlink' ? 0 : (entry.uid ?? 0);
      const gid = entry.type === 'symlink' ? 0 : (entry.gid ?? 0);
      out.write(header({ name: long ? tarName.slice(-100) : tarName, mode, uid, gid, size, typeflag, ...(linkname !== undefined ? { linkname: longLink ? linkname.slice(0, 100) : linkname } : {}) }));
      if (entry.type === 'file') {
        if (Buffer.isBuffer(entry.content)) out.write(entry.content);
        else await copyFile(out, entry.content.fromFile, size);
        out.write(padding(size));
      }
    }
    out.write(Buffer.alloc(BLOCK * 2, 0));
  } catch (error) {
    out.close();
    throw error;
  }
  return out.close();
}
