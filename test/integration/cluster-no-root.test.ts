/**
 * `npm run cluster:up` as a user who is not root: it stops at once with a
 * message naming what the node needs, and changes nothing (issue 14).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/cluster/binaries.js';
import { isRoot } from '../../src/cluster/host-packages.js';

function ledger(): string {
  try {
    return readFileSync('/run/kwc-host.json', 'utf8');
  } catch {
    return '(none)';
  }
}

// Only root can become another user; on a machine without root the command's own user is not root anyway.
const canSwitchUser = isRoot() && existsSync('/usr/sbin/runuser');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!canSwitchUser)('cluster:up without root', () => {
  it('stops naming root and --no-node, creates no state directory and touches no host setting', async () => {
    const home = mkdtempSync(join(tmpdir(), 'kwc-no-root-'));
    dirs.push(home);
    chmodSync(home, 0o777);
    // Pods' veth ends come and go with the tests running beside this one; what a
    // cluster:up would add (a bridge, a dummy link) is anything else.
    const hostLinks = (): string[] => readdirSync('/sys/class/net').filter((l) => !l.startsWith('veth')).sort();
    const links = hostLinks();
    const before = ledger();
    const result = await new Promise<{ code: number; stderr: string; stdout: string }>((resolve) =>
      execFile(
        '/usr/sbin/runuser',
        ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cluster', 'cli.ts'), 'up'],
        { cwd: repoRoot, env: { ...process.env, HOME: home, KWC_CLUSTER_DIR: join(home, 'cluster') } },
        (error, stdout, stderr) => resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr }),
      ),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('the local node (containerd and a kubelet) needs root');
    expect(result.stderr).toContain('npm run cluster:up -- --no-node');
    expect(existsSync(join(home, 'cluster'))).toBe(false);
    expect(hostLinks()).toEqual(links);
    expect(ledger()).toBe(before);
  }, 60_000);
});
