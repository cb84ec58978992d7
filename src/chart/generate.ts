/**
 * Writes the Helm chart (dist/chart) and the kustomize base
 * (dist/kustomization.yaml) from the constructs; `npm run synth` runs it
 * after `cdk8s synth`, which empties dist/ first.
 *
 *   tsx src/chart/generate.ts [DIR]   write into DIR (default: dist)
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../cluster/binaries.js';
import { generatedFiles } from './files.js';

export function writeGeneratedFiles(dir: string): string[] {
  rmSync(join(dir, 'chart'), { recursive: true, force: true });
  const files = generatedFiles();
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return Object.keys(files).sort();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dir = resolve(process.argv[2] ?? join(repoRoot, 'dist'));
  const written = writeGeneratedFiles(dir);
  process.stdout.write(`wrote ${written.length} files into ${dir}: the Helm chart (chart/) and kustomization.yaml\n`);
}
