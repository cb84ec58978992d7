/**
 * Debian packages, the one source of host pieces (containerd, runc, the CNI
 * plugins, nft, mosquitto) and of the shared libraries and busybox that go
 * into locally built images. Versions are pinned; Debian's archive keeps only
 * the newest revision of each package, so a pin that a security update has
 * replaced is answered with that update, as long as it is the same upstream
 * version (same code, Debian's patches on top), with a warning. Anything else
 * is refused with a message naming the pin and what the archive offers.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, runOk } from './commands.js';

export interface PinnedPackage {
  name: string;
  /** The exact Debian version the project was tested with. */
  pinned: string;
}

export interface ChosenVersion {
  version: string;
  /** Set when the pin was not available and a newer revision was taken instead. */
  warning?: string;
}

/** `1:1.35.0-4+deb12u1+b1` -> `1.35.0`: the epoch and the Debian revision removed. */
export function upstreamVersion(version: string): string {
  const withoutEpoch = version.includes(':') ? version.slice(version.indexOf(':') + 1) : version;
  const dash = withoutEpoch.lastIndexOf('-');
  return dash > 0 ? withoutEpoch.slice(0, dash) : withoutEpoch;
}

/**
 * The version to use: the pin when the archive has it, else the newest
 * available revision of the same upstream version (`available` is newest
 * first, as `apt-cache madison` lists it).
 *
 * @throws Error naming the package, the pin and the available versions
 */
export function chooseVersion(pkg: PinnedPackage, available: readonly string[]): ChosenVersion {
  if (available.includes(pkg.pinned)) return { version: pkg.pinned };
  const same = available.find((v) => upstreamVersion(v) === upstreamVersion(pkg.pinned));
  if (same !== undefined) {
    return {
      version: same,
      warning: `Debian package ${pkg.name} ${pkg.pinned} is no longer in the archive; using ${same} (same upstream version ${upstreamVersion(same)})`,
    };
  }
  const offered = available.length > 0 ? available.join(', ') : 'nothing';
  throw new Error(
    `Debian package ${pkg.name}: the pinned version ${pkg.pinned} is not available and the archive offers ${offered}; ` +
      'update the pin (src/cluster/versions.env or src/images/versions.env) after checking the new version works',
  );
}

async function madison(name: string): Promise<string[]> {
  const res = await runCommand('apt-cache', ['madison', name]);
  if (res.code !== 0) return [];
  return res.stdout
    .split('\n')
    .map((line) => line.split('|')[1]?.trim())
    .filter((v): v is string => v !== undefined && v !== '');
}

let listsRefreshed = false;

async function refreshLists(log: (line: string) => void): Promise<void> {
  if (listsRefreshed) return;
  log('apt-get update (the package lists lack a pinned version)');
  await runOk('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update', '-qq'], { env: aptEnv() });
  listsRefreshed = true;
}

function aptEnv(): NodeJS.ProcessEnv {
  return { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
}

/** Chooses each package's version from the archive, refreshing the package lists once when a pin is not found. */
export async function resolveVersions(pkgs: readonly PinnedPackage[], log: (line: string) => void): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const pkg of pkgs) {
    let available = await madison(pkg.name);
    if (!available.includes(pkg.pinned)) {
      await refreshLists(log);
      available = await madison(pkg.name);
    }
    const chosen = chooseVersion(pkg, available);
    if (chosen.warning !== undefined) log(`warning: ${chosen.warning}`);
    out.set(pkg.name, chosen.version);
  }
  return out;
}

/** `apt-get install` of the chosen versions (root only); waits for another apt or dpkg to finish first. */
export async function aptInstall(pkgs: readonly PinnedPackage[], log: (line: string) => void): Promise<void> {
  const versions = await resolveVersions(pkgs, log);
  const args = [...versions].map(([name, version]) => `${name}=${version}`);
  log(`apt-get install ${args.join(' ')}`);
  await runOk('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-qq', '--no-install-recommends', ...args], { env: aptEnv() });
}

/**
 * Downloads the `.deb` of each package into `dir` (no root needed) and returns
 * their paths by package name.
 */
export async function aptDownload(pkgs: readonly PinnedPackage[], dir: string, log: (line: string) => void): Promise<Map<string, string>> {
  const versions = await resolveVersions(pkgs, log);
  const out = new Map<string, string>();
  for (const [name, version] of versions) {
    const existing = debIn(dir, name, version);
    if (existing !== undefined) {
      out.set(name, existing);
      continue;
    }
    log(`apt-get download ${name}=${version}`);
    await runOk('apt-get', ['download', '-qq', `${name}=${version}`], { cwd: dir, env: aptEnv() });
    const got = debIn(dir, name, version);
    if (got === undefined) throw new Error(`apt-get download ${name}=${version} left no .deb in ${dir}`);
    out.set(name, got);
  }
  return out;
}

/** apt names a download `<name>_<version with ':' as %3a>_<arch>.deb`. */
function debIn(dir: string, name: string, version: string): string | undefined {
  const prefix = `${name}_${version.replace(/:/g, '%3a')}_`;
  const file = readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  return file === undefined ? undefined : join(dir, file);
}
