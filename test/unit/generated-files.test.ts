/**
 * dist/ (manifests.yaml, the Helm chart, the kustomize base) and imports/ are
 * committed; they must equal what `npm run synth` makes now, or users install
 * something the code does not say.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { writeGeneratedFiles } from '../../src/chart/generate.js';

const root = join(import.meta.dirname, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'kwc-synth-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function cdk8s(cwd: string, ...args: string[]): void {
  execFileSync(join(root, 'node_modules', '.bin', 'cdk8s'), [...args, '--check-upgrade=false'], { cwd, stdio: 'pipe' });
}

/** Every file below `dir`, as paths relative to it. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

test('committed dist/ (manifests, chart, kustomize base) and imports/ equal a fresh synth', () => {
  cdk8s(root, 'synth', '--output', join(out, 'dist'));
  expect(readdirSync(join(out, 'dist'))).toEqual(['manifests.yaml']);
  writeGeneratedFiles(join(out, 'dist'));
  // Run where the import cannot touch the project's cdk8s.yaml (cdk8s import records its sources there).
  writeFileSync(join(out, 'cdk8s.yaml'), 'language: typescript\n');
  cdk8s(out, 'import', join(out, 'dist', 'manifests.yaml'), '--output', join(out, 'imports'), '--language', 'typescript');

  const dist = filesBelow(join(out, 'dist'));
  expect(dist).toContain('chart/values.schema.json');
  expect(filesBelow(join(root, 'dist'))).toEqual(dist);
  for (const file of dist) expect(readFileSync(join(out, 'dist', file), 'utf8'), file).toBe(readFileSync(join(root, 'dist', file), 'utf8'));
  const imports = readdirSync(join(out, 'imports')).sort();
  expect(readdirSync(join(root, 'imports')).sort()).toEqual(imports);
  for (const file of imports) {
    expect(readFileSync(join(out, 'imports', file), 'utf8'), file).toBe(readFileSync(join(root, 'imports', file), 'utf8'));
  }
}, 120_000);
