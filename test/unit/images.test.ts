/**
 * Images built without a registry: reproducible layers, OCI archives that
 * name the image by its digest, and a controller image that agrees with the
 * Dockerfile.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/cluster/binaries.js';
import { imageVersions } from '../../src/images/build.js';
import { assembleImage, BlobStore } from '../../src/images/oci.js';
import { writeTar, type TarEntry } from '../../src/images/tar.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kwc-images-test-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const longPath = `app/node_modules/${'a'.repeat(60)}/${'b'.repeat(60)}/index.js`;
const entries = (fileOnDisk: string): TarEntry[] => [
  { type: 'dir', path: 'app', mode: 0o755 },
  { type: 'file', path: 'app/run.sh', mode: 0o755, content: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'file', path: 'app/data', mode: 0o644, content: { fromFile: fileOnDisk } },
  { type: 'symlink', path: 'app/link', target: 'run.sh' },
  { type: 'dir', path: 'home/nonroot', mode: 0o700, uid: 65532, gid: 65532 },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
  { type: 'file', path: longPath, mode: 0o644, content: Buffer.from('long\n') },
];

describe('layer tars', () => {
  it('are byte-for-byte the same for the same entries, whenever and wherever written', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'data'), 'x'.repeat(1000));
    const a = await writeTar(join(d, 'a.tar'), entries(join(d, 'data')));
    await new Promise((r) => setTimeout(r, 20));
    const b = await writeTar(join(d, 'b.tar'), entries(join(d, 'data')));
    expect(a).toEqual(b);
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(readFileSync(join(d, 'a.tar')).length).toBe(a.size);
  });

  it('read back with GNU tar: modes, owners, symlinks, long paths and content intact, time 0', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'data'), 'payload');
    await writeTar(join(d, 'l.tar'), entries(join(d, 'data')));
    const listing = execFileSync('tar', ['-tv', '--numeric-owner', '-f', join(d, 'l.tar')], { encoding: 'utf8' });
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +\d+ 1970-01-01 00:00 app\/run\.sh$/m);
    expect(listing).toMatch(/^lrwxrwxrwx 0\/0 +0 1970-01-01 00:00 app\/link -> run\.sh$/m);
    expect(listing).toMatch(/^drwx------ 65532\/65532 +0 .* home\/nonroot\/$/m);
    expect(listing).toMatch(/^drwxrwxrwt 0\/0 .* tmp\/$/m);
    expect(listing).toContain(longPath);
    const out = join(d, 'x');
    execFileSync('mkdir', [out]);
    execFileSync('tar', ['-xf', join(d, 'l.tar'), '-C', out]);
    expect(readFileSync(join(out, 'app', 'data'), 'utf8')).toBe('payload');
    expect(readFileSync(join(out, longPath), 'utf8')).toBe('long\n');
  });
});

describe('OCI archives', () => {
  it('name the image by its manifest digest, under a tag and a digest reference, with a layout ctr imports', async () => {
    const store = new BlobStore(tempDir());
    const layer = await store.putLayer([{ type: 'file', path: 'hello', mode: 0o644, content: Buffer.from('hi') }]);
    const image = await assembleImage(store, 'localhost/test', [layer], { Entrypoint: ['/hello'], User: '1:1' });
    const hex = image.manifestDigest.replace('sha256:', '');
    expect(image.ref).toBe(`localhost/test:${hex.slice(0, 12)}`);
    expect(image.digestRef).toBe(`localhost/test@sha256:${hex}`);
    const out = tempDir();
    execFileSync('tar', ['-xf', image.archive, '-C', out]);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.annotations['io.containerd.image.name'])).toEqual([image.ref, image.digestRef]);
    expect(index.manifests.every((m) => m.digest === image.manifestDigest)).toBe(true);
    const manifest = JSON.parse(readFileSync(join(out, 'blobs', 'sha256', hex), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    expect(manifest.layers.map((l) => l.digest)).toEqual([layer.digest]);
    const config = JSON.parse(readFileSync(join(out, 'blobs', 'sha256', manifest.config.digest.replace('sha256:', '')), 'utf8')) as { config: unknown; rootfs: { diff_ids: string[] } };
    expect(config.config).toEqual({ Entrypoint: ['/hello'], User: '1:1' });
    expect(config.rootfs.diff_ids).toEqual([layer.digest]);
    // Every blob is what its name says.
    for (const d of [manifest.config.digest, layer.digest, image.manifestDigest]) {
      const hash = execFileSync('sha256sum', [join(out, 'blobs', 'sha256', d.replace('sha256:', ''))], { encoding: 'utf8' }).split(' ')[0];
      expect(`sha256:${hash}`).toBe(d);
    }
  });

  it('are reused for the same manifest', async () => {
    const store = new BlobStore(tempDir());
    const layer = await store.putLayer([{ type: 'file', path: 'a', mode: 0o644, content: Buffer.from('a') }]);
    const first = await assembleImage(store, 'localhost/test', [layer], {});
    const second = await assembleImage(store, 'localhost/test', [layer], {});
    expect(second).toEqual(first);
    const other = await assembleImage(store, 'localhost/test', [layer], { User: '2' });
    expect(other.manifestDigest).not.toBe(first.manifestDigest);
  });
});

describe('the controller image', () => {
  it('carries Node.js of the major version the Dockerfile names', () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    const major = /^ARG NODE_MAJOR=(\d+)$/m.exec(dockerfile)?.[1];
    expect(major).toBeDefined();
    expect(imageVersions().get('NODE_VERSION')?.split('.')[0]).toBe(major);
  });

  it('pins the Node.js binary by integrity', () => {
    expect(imageVersions().get('NODE_INTEGRITY')).toMatch(/^sha512-[A-Za-z0-9+/]+={0,2}$/);
  });
});
