/**
 * `npm run footprint [-- --tarball PATH]`: what installing the package costs a
 * library user, measured the way they get it. Packs the package (`npm pack`,
 * which builds it) unless given a tarball, then installs it with npm from the
 * registry into two fresh projects in a temporary folder:
 *
 * - an empty project (`npm install <tarball>`; npm adds the peer dependencies
 *   cdk8s and constructs itself);
 * - a cdk8s app as `cdk8s init typescript-app` makes one (cdk8s, constructs,
 *   cdk8s-plus-33 installed first), counting only what the package adds;
 * - an empty project that runs the controller from npm: the package plus the
 *   optional peer dependencies the controller's command asks for (all but
 *   @kubernetes/client-node, which only some kubeconfigs need).
 *
 * Packages are the folders with a package.json under node_modules (each
 * installed copy once); sizes are the bytes of their files (1 MB = 10^6 bytes).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { repoRoot } from '../src/cluster/binaries.js';

interface Installed {
  readonly packages: Map<string, number>;
}

/** Every installed package (by its path under the project) and the bytes of its own files. */
function installed(project: string): Installed {
  const packages = new Map<string, number>();
  const walk = (dir: string, owner: string | undefined): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) continue;
      if (!entry.isDirectory()) {
        if (owner !== undefined) packages.set(owner, (packages.get(owner) ?? 0) + statSync(path).size);
        continue;
      }
      const parent = basename(dir);
      const isScope = parent === 'node_modules' && entry.name.startsWith('@');
      const isPackage = !isScope && (parent === 'node_modules' || (parent.startsWith('@') && basename(dirname(dir)) === 'node_modules'));
      walk(path, isPackage ? path : owner);
    }
  };
  walk(join(project, 'node_modules'), undefined);
  return { packages };
}

function npm(cwd: string, args: string[]): string {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

function project(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  return dir;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

function added(before: Installed, after: Installed): Map<string, number> {
  return new Map([...after.packages].filter(([path]) => !before.packages.has(path)));
}

function describe(title: string, packages: Map<string, number>, root: string): void {
  console.log(`${title}: ${packages.size} packages, ${mb(sum(packages))} MB`);
  const largest = [...packages].sort((a, b) => b[1] - a[1]).slice(0, 8);
  for (const [path, bytes] of largest) console.log(`  ${mb(bytes).padStart(6)} MB  ${path.slice(root.length + 1)}`);
}

function main(): void {
  const args = process.argv.slice(2);
  const given = args[0] === '--tarball' ? args[1] : undefined;
  const work = mkdtempSync(join(tmpdir(), 'kwc-footprint-'));
  try {
    let tarball: string;
    if (given !== undefined) {
      tarball = resolve(given);
    } else {
      const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as { filename: string; size: number; unpackedSize: number; entryCount: number }[];
      if (packed === undefined) throw new Error('npm pack wrote nothing');
      tarball = join(work, packed.filename);
      console.log(`npm pack: ${packed.filename}, ${packed.entryCount} files, ${mb(packed.size)} MB packed, ${mb(packed.unpackedSize)} MB unpacked`);
    }

    const empty = project(work, 'empty-project');
    npm(empty, ['install', tarball]);
    describe('npm install <tarball> into an empty project', installed(empty).packages, join(empty, 'node_modules'));

    const app = project(work, 'cdk8s-app');
    npm(app, ['install', 'cdk8s', 'constructs', 'cdk8s-plus-33']);
    const base = installed(app);
    console.log(`a cdk8s app (cdk8s, constructs, cdk8s-plus-33): ${base.packages.size} packages, ${mb(sum(base.packages))} MB`);
    npm(app, ['install', tarball]);
    describe('what npm install <tarball> adds to it', added(base, installed(app)), join(app, 'node_modules'));

    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string>; peerDependenciesMeta: Record<string, unknown> };
    const controller = Object.keys(pkg.peerDependenciesMeta).filter((name) => name !== '@kubernetes/client-node');
    const runner = project(work, 'controller');
    npm(runner, ['install', tarball, ...controller.map((name) => `${name}@${pkg.peerDependencies[name]}`)]);
    describe(`npm install <tarball> ${controller.join(' ')} (to run the controller)`, installed(runner).packages, join(runner, 'node_modules'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
