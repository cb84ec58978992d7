/**
 * The controller compiled to JavaScript, as a container image would run it
 * (no tsx loader), built into an ignored folder so the shared lib/ is untouched.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/cluster/binaries.js';

export const COMPILED_DIR = join(repoRoot, '.tmp', 'bench-build');
export const COMPILED_MAIN = join(COMPILED_DIR, 'src', 'controller', 'cli', 'main.js');

export async function buildController(log: (line: string) => void): Promise<string> {
  log(`compiling the controller into ${COMPILED_DIR}`);
  const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const errors = await new Promise<string>((resolve) => {
    execFile(process.execPath, [tsc, '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', COMPILED_DIR, '--sourceMap', '--declaration', 'false'], { cwd: repoRoot, maxBuffer: 16 << 20 }, (err, stdout) => resolve(err ? stdout : ''));
  });
  // tsc emits even with type errors (someone's work in progress); only a missing entry point is fatal.
  if (errors !== '') log(`tsc reported type errors; using its output anyway:\n${errors.split('\n').slice(0, 5).join('\n')}`);
  if (!existsSync(COMPILED_MAIN)) throw new Error(`no ${COMPILED_MAIN} after tsc:\n${errors}`);
  return COMPILED_MAIN;
}
