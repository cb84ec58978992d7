/**
 * The reference launcher and runner images by name, and which build of them
 * is current: `npm run images` (and every other build) records their digest
 * references in the image cache, and the reference backend takes them as the
 * images of runs that name none. By digest, so that a backend never runs an
 * image other than the one that was built for it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../cluster/binaries.js';

export const REFERENCE_LAUNCHER_REPOSITORY = 'localhost/kwc-launcher';
export const REFERENCE_RUNNER_REPOSITORY = 'localhost/kwc-runner';

const RECORD = 'reference-images.json';

export interface ReferenceImages {
  /** `localhost/kwc-launcher@sha256:...` */
  readonly launcher: string;
  /** `localhost/kwc-runner@sha256:...` */
  readonly runner: string;
}

export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KWC_IMAGE_CACHE ?? join(repoRoot, '.cache', 'images');
}

/** Remembers the reference images just built. */
export function recordReferenceImages(images: ReferenceImages, cacheDir = imageCacheDir()): void {
  mkdirSync(cacheDir, { recursive: true });
  const tmp = join(cacheDir, `${RECORD}.${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(images, null, 2)}\n`);
  renameSync(tmp, join(cacheDir, RECORD));
}

/** The reference images of the last build, or undefined when none was built here. */
export function builtReferenceImages(cacheDir = imageCacheDir()): ReferenceImages | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(cacheDir, RECORD), 'utf8')) as Partial<ReferenceImages>;
    if (typeof parsed.launcher === 'string' && typeof parsed.runner === 'string') return { launcher: parsed.launcher, runner: parsed.runner };
  } catch {
    // not built yet
  }
  return undefined;
}
