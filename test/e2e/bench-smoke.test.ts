/**
 * Keeps `npm run bench` working: the whole bench at a tiny size against the
 * shared test cluster, whose node really runs the run Pods (without a node
 * the bench would play the kubelet, so this test skips). It checks that
 * every measure produces its figures and that recovery left nothing
 * duplicated; never how fast anything was.
 */
import { expect, inject, test } from 'vitest';
import { ALL_PHASES, runBench } from '../../bench/bench.js';
import { markdownSection, rows } from '../../bench/report.js';
import { skipWithout, testNode } from '../setup/cluster-access.js';

const node = testNode();

test.skipIf(skipWithout('the node', node !== null))('the bench measures every row at a tiny size, its runs running on the node', async () => {
  const result = await runBench({
    workers: 3,
    idleSeconds: 2,
    baselineSeconds: 1,
    keys: 2,
    coldStartRuns: 2,
    latencyRuns: 2,
    phases: new Set(ALL_PHASES),
    kubeconfigPath: inject('kubeconfigPath'),
    kubectl: inject('kubectlPath'),
    runImages: { runnerImage: node?.images.standinRunner.ref ?? '', launcherImage: node?.images.standinLauncher.ref ?? '' },
    log: () => undefined,
  });

  expect(result.scale).toMatchObject({ workers: 3 });
  expect(result.scale.seconds).toBeGreaterThan(0);
  expect(result.scale.limitSeconds).toBeGreaterThan(0);
  // The limit's parts: the controller's writes made again by a bare client, and bare broker sessions.
  expect(result.scale.limit.writesPerWorker['POST workers']).toBeGreaterThanOrEqual(1);
  expect(result.scale.limit.apiSeconds).toBeGreaterThan(0);
  expect(result.scale.limit.brokerSeconds).toBeGreaterThan(0);
  expect(result.scale.limit.seconds).toBeCloseTo(result.scale.limit.keySeconds + result.scale.limit.apiSeconds + result.scale.limit.brokerSeconds, 6);
  expect(result.scale.keyType).toBe('ecdsa-p256');
  expect(result.playedKubelet).toBe(false);
  expect(result.latency).toMatchObject({ runs: 2, submitToRunning: { n: 2 }, bare: { n: 2 } });
  expect(result.dispatch?.dispatch.n).toBe(3);
  expect(result.dispatch?.bare.n).toBe(3);
  expect(result.idle?.rssMiB).toBeGreaterThan(0);
  expect(result.recovery).toMatchObject({ workers: 3, busy: 3, duplicatePods: 0, reRegistered: 0, secretsRewritten: 0, wrongStatus: [], runsNotRunning: 0 });
  expect(result.recovery?.cpu?.controller).toBeGreaterThan(0);
  expect(Object.keys(result.recovery?.cpu ?? {})).toEqual(['controller', 'bench (backend, broker)']);
  // Counters of a shared cluster include other tests' requests: only that the figures are there.
  expect(result.lifecycle?.runs).toBe(3);
  expect(result.lifecycle?.writesPerRun).toBeGreaterThan(0);
  expect(result.coldStart).toMatchObject({ runs: 2, submitToRunning: { n: 2 }, bare: { n: 2 } });
  // Which of the two is faster is a timing, left to the bench: with ECDSA keys a cold start is within the node's noise of a bare Pod.
  expect(result.coldStart?.submitToRunning.p50).toBeGreaterThan(0);
  expect(result.coldStart?.bare.p50).toBeGreaterThan(0);
  expect(result.failover?.toLeaderSeconds).toBeGreaterThan(0);
  expect(result.failover?.toAdoptedSeconds).toBeGreaterThanOrEqual(result.failover?.toSyncedSeconds ?? Infinity);
  expect(rows(result).map((r) => r.measure.split(' ')[0])).toEqual(['scale-out', 'dispatch', 'dispatch', 'idle', 'idle', 'API', 'cold', 'queue-to-run', 'queue-to-run', 'failover', 'recovery']);
  expect(markdownSection(result, 'npm run bench')).toContain('| measure |');
}, 300_000);
