/**
 * What a machine without root is told when host pieces are missing: the
 * packages, why each is needed, and the command that installs them.
 */
import { describe, expect, it } from 'vitest';
import { HOST_PIECES, missingPiecesMessage, pinnedPackages, type HostPiece } from '../../src/cluster/host-packages.js';

const absent: HostPiece = { pkg: 'containerd', versionKey: 'DEB_CONTAINERD', files: ['/nonexistent/kwc-test/containerd'], purpose: 'the container runtime' };

describe('missing host pieces', () => {
  it('are named with their purpose, the missing file, and the apt-get line', () => {
    const message = missingPiecesMessage([absent, { ...absent, pkg: 'runc', files: ['/nonexistent/kwc-test/runc'], purpose: 'the OCI runtime' }], 'the local node', 'Or use --no-node.');
    expect(message).toContain('the local node needs Debian packages that are not installed:');
    expect(message).toContain('  containerd: the container runtime (missing /nonexistent/kwc-test/containerd)');
    expect(message).toContain('  runc: the OCI runtime (missing /nonexistent/kwc-test/runc)');
    expect(message).toContain('sudo apt-get install -y --no-install-recommends containerd runc');
    expect(message.endsWith('Or use --no-node.')).toBe(true);
  });

  it('are pinned in src/cluster/versions.env, every one of them', () => {
    const pins = pinnedPackages(Object.values(HOST_PIECES));
    expect(pins.map((p) => p.name).sort()).toEqual(['containerd', 'containernetworking-plugins', 'mosquitto', 'nftables', 'runc']);
    for (const p of pins) expect(p.pinned).toMatch(/^[0-9][\w.+~:-]*-[\w.+~]+$/);
  });

  it('without a pin, say which key is missing', () => {
    expect(() => pinnedPackages([{ ...absent, versionKey: 'DEB_NOT_THERE' }])).toThrow(/src\/cluster\/versions\.env has no DEB_NOT_THERE \(the version of Debian package containerd\)/);
  });
});
