/**
 * Leader election on a real Lease: one of two candidates leads; the other takes
 * over at once after a graceful stop, and within the lease duration after the
 * leader is cut off from the API server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, LEASES } from '../../src/runtime/k8s-client.js';
import { LeaderElector, kubeLeaseStore, type LeaseStore } from '../../src/runtime/leader-election.js';
import { createTestNamespace, testKubeConfig } from '../setup/cluster-access.js';
import { CuttableProxy, apiServerAddress, eventually } from './runtime-support.js';

let ns: string;
let admin: KubeClient;
let proxy: CuttableProxy;
let viaProxy: KubeClient;
const electors: LeaderElector[] = [];

beforeAll(async () => {
  const kc = testKubeConfig();
  ns = await createTestNamespace('rt-lease');
  admin = KubeClient.fromKubeConfig(kc);
  proxy = await CuttableProxy.start(apiServerAddress(kc));
  viaProxy = KubeClient.fromKubeConfig(proxy.kubeConfig(kc));
});

afterEach(async () => {
  proxy.restore();
  await Promise.all(electors.splice(0).map((e) => e.stop()));
});

afterAll(async () => {
  viaProxy.rest.close();
  admin.rest.close();
  await proxy.close();
});

interface Tracker {
  leaders: Set<string>;
  overlaps: number;
}

function elector(leases: LeaseStore, name: string, identity: string, tracker: Tracker): LeaderElector {
  const e = new LeaderElector({
    leases,
    namespace: ns,
    name,
    identity,
    leaseDurationMs: 4000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 250,
    onStartedLeading: () => {
      tracker.leaders.add(identity);
      if (tracker.leaders.size > 1) tracker.overlaps++;
    },
    onStoppedLeading: () => void tracker.leaders.delete(identity),
  });
  electors.push(e);
  void e.run();
  return e;
}

describe('LeaderElector on a real Lease', () => {
  it('elects one of two candidates and hands over at once when the leader stops', async () => {
    const tracker: Tracker = { leaders: new Set(), overlaps: 0 };
    const a = elector(kubeLeaseStore(admin), 'handover', 'candidate-a', tracker);
    const b = elector(kubeLeaseStore(admin), 'handover', 'candidate-b', tracker);
    await eventually('a leader', () => tracker.leaders.size === 1);
    const [leader, standby] = a.isLeader() ? [a, b] : [b, a];

    const lease = await admin.get(LEASES, ns, 'handover');
    expect(lease.spec?.holderIdentity).toBe(leader.identity);
    expect(lease.spec?.renewTime).toMatch(/\.\d{6}Z$/);

    await leader.stop();
    const released = await admin.get(LEASES, ns, 'handover');
    expect(released.spec?.holderIdentity ?? '').not.toBe(leader.identity);

    await eventually('the standby to lead', () => standby.isLeader());
    const taken = await admin.get(LEASES, ns, 'handover');
    expect(taken.spec).toMatchObject({ holderIdentity: standby.identity, leaseTransitions: 1 });
    expect(tracker.overlaps).toBe(0);
  });

  it('a leader cut off from the API server steps down, and the standby takes over', async () => {
    const tracker: Tracker = { leaders: new Set(), overlaps: 0 };
    const cutOff = elector(kubeLeaseStore(viaProxy), 'partition', 'cut-off', tracker);
    await eventually('the first candidate to lead', () => cutOff.isLeader());
    const standby = elector(kubeLeaseStore(admin), 'partition', 'standby', tracker);

    proxy.takeDown();
    await eventually('the cut-off leader to step down', () => !cutOff.isLeader());
    await eventually('the standby to lead', () => standby.isLeader());
    expect(tracker.overlaps).toBe(0);
    const lease = await admin.get(LEASES, ns, 'partition');
    expect(lease.spec?.holderIdentity).toBe('standby');

    proxy.restore();
    // Back online, the old leader sees a live holder and stays a standby.
    await eventually('two renewals by the standby', async () => {
      const l = await admin.get(LEASES, ns, 'partition');
      return l.spec?.renewTime !== lease.spec?.renewTime;
    });
    expect(cutOff.isLeader()).toBe(false);
  });
});
