/**
 * Host pieces the local cluster and the tests use, installed from Debian on
 * first use when running as root (as the Go binaries are built on first use).
 * Without root nothing is changed: the error names what is missing and the
 * command that installs it.
 */
import { existsSync } from 'node:fs';
import { clusterVersionsFile } from './binaries.js';
import { aptInstall, type PinnedPackage } from './debian.js';

export interface HostPiece {
  /** Debian package. */
  readonly pkg: string;
  /** Its key in src/cluster/versions.env. */
  readonly versionKey: string;
  /** Files whose presence means the package is installed. */
  readonly files: readonly string[];
  readonly purpose: string;
}

export const HOST_PIECES = {
  containerd: { pkg: 'containerd', versionKey: 'DEB_CONTAINERD', files: ['/usr/bin/containerd', '/usr/bin/containerd-shim-runc-v2', '/usr/bin/ctr'], purpose: 'the container runtime' },
  runc: { pkg: 'runc', versionKey: 'DEB_RUNC', files: ['/usr/sbin/runc'], purpose: 'the OCI runtime containerd starts containers with' },
  cni: {
    pkg: 'containernetworking-plugins',
    versionKey: 'DEB_CONTAINERNETWORKING_PLUGINS',
    files: ['/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/usr/lib/cni/loopback'],
    purpose: 'the bridge and host-local CNI plugins (pod networking)',
  },
  nft: { pkg: 'nftables', versionKey: 'DEB_NFTABLES', files: ['/usr/sbin/nft'], purpose: "the node's own firewall table (the route to the API server, and no outside access to the bridge address)" },
  mosquitto: { pkg: 'mosquitto', versionKey: 'DEB_MOSQUITTO', files: ['/usr/sbin/mosquitto'], purpose: 'the stand-alone MQTT broker the backend is tested against' },
} as const satisfies Record<string, HostPiece>;

export type HostPieceName = keyof typeof HOST_PIECES;

/** Everything a node needs. */
export const NODE_PIECES: readonly HostPieceName[] = ['containerd', 'runc', 'cni', 'nft'];

export function missingPieces(names: readonly HostPieceName[]): HostPiece[] {
  return names.map((n) => HOST_PIECES[n]).filter((p) => p.files.some((f) => !existsSync(f)));
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function pinnedPackages(pieces: readonly HostPiece[]): PinnedPackage[] {
  const versions = clusterVersionsFile();
  return pieces.map((p) => {
    const pinned = versions.get(p.versionKey);
    if (pinned === undefined) throw new Error(`src/cluster/versions.env has no ${p.versionKey} (the version of Debian package ${p.pkg})`);
    return { name: p.pkg, pinned };
  });
}

/** The message for a machine where the pieces cannot be installed by us. */
export function missingPiecesMessage(missing: readonly HostPiece[], what: string, alternative?: string): string {
  const lines = [
    `${what} needs Debian packages that are not installed:`,
    ...missing.map((p) => `  ${p.pkg}: ${p.purpose} (missing ${p.files.filter((f) => !existsSync(f)).join(', ')})`),
    'Run as root to have them installed on first use, or install them yourself:',
    `  sudo apt-get install -y --no-install-recommends ${missing.map((p) => p.pkg).join(' ')}`,
  ];
  if (alternative !== undefined) lines.push(alternative);
  return lines.join('\n');
}

/**
 * Installs whatever of `names` is missing (root), or throws naming it and
 * the install command (not root). Changes nothing when all are present.
 */
export async function ensureHostPieces(
  names: readonly HostPieceName[],
  options: { what: string; alternative?: string; log?: (line: string) => void },
): Promise<void> {
  const missing = missingPieces(names);
  if (missing.length === 0) return;
  if (!isRoot()) throw new Error(missingPiecesMessage(missing, options.what, options.alternative));
  const log = options.log ?? ((line: string): void => void process.stderr.write(`[host packages] ${line}\n`));
  log(`installing ${missing.map((p) => p.pkg).join(', ')} from Debian (first use)`);
  await aptInstall(pinnedPackages(missing), log);
  const still = missingPieces(names);
  if (still.length > 0) throw new Error(`apt-get install succeeded but ${still.flatMap((p) => p.files).join(', ')} are still missing`);
}
