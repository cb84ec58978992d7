/**
 * The npm package as a library user gets it: packed by `npm pack` (whose
 * prepack builds it) from a staged copy of the sources, so that tests running
 * side by side never rebuild the lib/ another one is reading.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

export interface PackedPackage {
  /** The .tgz file. */
  readonly tarball: string;
  /** Paths inside the package, as `npm pack` lists them. */
  readonly files: readonly string[];
}

/** Packs the current sources into `dir` (created if needed). */
export function packPackage(dir: string): PackedPackage {
  const stage = mkdtempSync(join(tmpdir(), 'kwc-stage-'));
  for (const entry of ['package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'src', 'constructs', 'dist']) {
    cpSync(join(repoRoot, entry), join(stage, entry), { recursive: true });
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(stage, 'node_modules'));
  mkdirSync(dir, { recursive: true });
  let out: string;
  try {
    out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  // The prepack build's own lines come first on stdout.
  const [packed] = JSON.parse(out.slice(out.search(/^\[/m))) as { filename: string; files: { path: string }[] }[];
  if (packed === undefined) throw new Error(`npm pack wrote nothing:\n${out}`);
  return { tarball: join(dir, packed.filename), files: packed.files.map((f) => f.path) };
}

/** The package's own package.json. */
export function packageJson(): {
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
} {
  return JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
}
