/**
 * OCI images assembled without a registry or a container engine: layers are
 * reproducible tars (tar.ts) kept in a content-addressed blob store, and an
 * image is an OCI image layout in a tar archive, which `ctr images import`
 * loads into containerd. Everything is named by its sha256 digest, so the
 * same inputs give the same image, and an archive already built is reused.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTar, type TarEntry } from './tar.js';

export const MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  index: 'application/vnd.oci.image.index.v1+json',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The runtime part of an image configuration (what the Dockerfile's ENV, USER, ENTRYPOINT... set). */
export interface ImageRuntimeConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
}

export interface BuiltImage {
  /** `localhost/<name>:<first 12 hex digits of the manifest digest>`. */
  ref: string;
  /** `localhost/<name>@sha256:<hex>`: what a Pod may name to get exactly this image. */
  digestRef: string;
  repository: string;
  manifestDigest: string;
  /** The OCI layout archive for `ctr images import`. */
  archive: string;
}

function hexOf(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

/** A content-addressed store of blobs: `<dir>/blobs/sha256/<hex>`. */
export class BlobStore {
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    mkdirSync(join(dir, 'tmp'), { recursive: true });
  }

  path(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hexOf(digest));
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  putBytes(bytes: Buffer, mediaType: string): Descriptor {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (!this.has(digest)) {
      const tmp = join(this.dir, 'tmp', `${hexOf(digest)}.${process.pid}`);
      writeFileSync(tmp, bytes);
      renameSync(tmp, this.path(digest));
    }
    return { mediaType, digest, size: bytes.length };
  }

  /** Writes a layer tar into the store and returns its descriptor (digest = diff_id, the layer is not compressed). */
  async putLayer(entries: readonly TarEntry[]): Promise<Descriptor> {
    const tmp = join(this.dir, 'tmp', `layer.${process.pid}.${Date.now()}.tar`);
    try {
      const blob = await writeTar(tmp, entries);
      if (this.has(blob.digest)) rmSync(tmp);
      else renameSync(tmp, this.path(blob.digest));
      return { mediaType: MEDIA_TYPES.layer, digest: blob.digest, size: blob.size };
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Remembers a value under a key (the inputs hash of a layer or an image), to skip rebuilding it. */
  remember(kind: string, key: string, value: unknown): void {
    const dir = join(this.dir, 'keys', kind);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, key), JSON.stringify(value));
  }

  recall<T>(kind: string, key: string): T | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'keys', kind, key), 'utf8')) as T;
    } catch {
      return undefined;
    }
  }
}

/**
 * Assembles an image from layers already in the store and writes its OCI
 * layout archive (reused when an archive of the same manifest exists).
 */
export async function assembleImage(store: BlobStore, repository: string, layers: readonly Descriptor[], runtime: ImageRuntimeConfig): Promise<BuiltImage> {
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: runtime,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  };
  const configDesc = store.putBytes(Buffer.from(JSON.stringify(config)), MEDIA_TYPES.config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestDesc = store.putBytes(Buffer.from(JSON.stringify(manifest)), MEDIA_TYPES.manifest);
  const hex = hexOf(manifestDesc.digest);
  const tag = hex.slice(0, 12);
  const ref = `${repository}:${tag}`;
  const archivesDir = join(store.dir, 'archives');
  mkdirSync(archivesDir, { recursive: true });
  const archive = join(archivesDir, `${repository.replace(/[^a-z0-9.-]+/g, '_')}-${tag}.tar`);
  if (!existsSync(archive)) {
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.index,
      // containerd names an imported image after io.containerd.image.name; the
      // second name, by digest, is how the CRI finds the image when a Pod names
      // it as <repository>@sha256:... (a "repo digest", which a registry pull records).
      manifests: [
        { ...manifestDesc, annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag } },
        { ...manifestDesc, annotations: { 'io.containerd.image.name': `${repository}@${manifestDesc.digest}` } },
      ],
    };
    const blob = (d: Descriptor): TarEntry => ({ type: 'file', path: `blobs/sha256/${hexOf(d.digest)}`, mode: 0o644, content: { fromFile: store.path(d.digest) } });
    const tmp = `${archive}.${process.pid}.tmp`;
    await writeTar(tmp, [
      { type: 'file', path: 'oci-layout', mode: 0o644, content: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
      { type: 'file', path: 'index.json', mode: 0o644, content: Buffer.from(JSON.stringify(index)) },
      { type: 'dir', path: 'blobs', mode: 0o755 },
      { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
      ...[configDesc, manifestDesc, ...layers].map(blob),
    ]);
    renameSync(tmp, archive);
  }
  return { ref, digestRef: `${repository}@${manifestDesc.digest}`, repository, manifestDigest: manifestDesc.digest, archive };
}

/** sha256 of several inputs, for cache keys. */
export function inputsKey(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    h.update(`${b.length}:`);
    h.update(b);
  }
  return h.digest('hex');
}
