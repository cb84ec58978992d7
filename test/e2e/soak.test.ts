/**
 * The short soak (bench/lib/soak.ts): two leader-elected controllers, the
 * backend and a pool on a cluster of its own with a real node, runs submitted
 * for 100 s while the leader is killed and stopped, the backend and
 * kube-apiserver restarted, the pool's size flaps and a Worker and a run Pod
 * are deleted by hand. Not one run may be lost, duplicated or failed by the
 * system, and nothing may be left behind. (`npm run soak` is the 8-minute one.)
 */
import { expect, test } from 'vitest';
import { formatReport, runSoak } from '../../bench/lib/soak.js';
import { canStartControlPlanes, skipWithout, testNode } from '../setup/cluster-access.js';

test.skipIf(skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()) || skipWithout('the node', testNode() !== null))(
  'a short soak loses, duplicates and fails no run, and leaves no phantom or orphan',
  async () => {
    const report = await runSoak({
      durationMs: 100_000,
      ratePerSecond: 0.5,
      poolSize: 4,
      failingShare: 0.1,
      log: (line) => process.stderr.write(`[soak] ${line}\n`),
    });
    process.stderr.write(`${formatReport(report)}\n`);
    // The soak did what it says: runs went through and every fault struck.
    expect(report.submitted).toBeGreaterThanOrEqual(45);
    expect(report.finished).toBeGreaterThan(report.submitted / 2);
    expect(report.faults).toHaveLength(14);
    expect(report.finished + report.failedByTest + report.failedBySystem.length + report.lost.length).toBe(report.submitted);
    expect(report.failedBySystem).toEqual([]);
    expect(report.lost).toEqual([]);
    expect(report.duplicated).toEqual([]);
    expect(report.phantoms).toEqual([]);
    expect(report.orphans).toEqual([]);
  },
  900_000,
);
