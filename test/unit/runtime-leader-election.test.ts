import { ApiException } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/runtime/k8s-client.js';
import {
  LeaderElector,
  toMicroTime,
  type LeaderElectionOptions,
  type LeaseStore,
} from '../../src/runtime/leader-election.js';

/** One Lease in memory with the API server's resourceVersion rules. */
class MemoryLeases {
  lease: Lease | undefined;
  private rv = 1;
  writes = 0;
  gets = 0;

  store(partition: { down: boolean } = { down: false }): LeaseStore {
    const check = (): void => {
      if (partition.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    };
    return {
      get: async () => {
        check();
        this.gets++;
        if (!this.lease) throw new ApiException(404, 'not found', { reason: 'NotFound' }, {});
        return structuredClone(this.lease);
      },
      create: async (_ns, lease) => {
        check();
        if (this.lease) throw new ApiException(409, 'exists', { reason: 'AlreadyExists' }, {});
        return this.write(lease);
      },
      replace: async (_ns, _name, lease) => {
        check();
        if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) {
          throw new ApiException(409, 'conflict', { reason: 'Conflict' }, {});
        }
        return this.write(lease);
      },
    };
  }

  private write(lease: Lease): Lease {
    this.writes++;
    this.lease = structuredClone({ ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } });
    return structuredClone(this.lease);
  }
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

// Short but with wide margins between them, so a loaded machine cannot reorder steps.
const TIMING = { leaseDurationMs: 1200, renewDeadlineMs: 600, retryPeriodMs: 100 };

const electors: LeaderElector[] = [];
interface Candidate {
  elector: LeaderElector;
  log: string[];
}
function candidate(
  leases: LeaseStore,
  identity: string,
  shared: { leaders: Set<string>; overlaps: number },
  extra: Partial<LeaderElectionOptions> = {},
): Candidate {
  const log: string[] = [];
  const elector = new LeaderElector({
    leases,
    namespace: 'ns',
    name: 'lock',
    identity,
    ...TIMING,
    onStartedLeading: () => {
      shared.leaders.add(identity);
      if (shared.leaders.size > 1) shared.overlaps++;
      log.push('started');
    },
    onStoppedLeading: () => {
      shared.leaders.delete(identity);
      log.push('stopped');
    },
    ...extra,
  });
  electors.push(elector);
  void elector.run();
  return { elector, log };
}

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
});

describe('LeaderElector', () => {
  it('creates the Lease, leads, and keeps renewing it', async () => {
    const mem = new MemoryLeases();
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const a = candidate(mem.store(), 'a', shared);
    await until(() => a.elector.isLeader());
    expect(mem.lease?.spec).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 2, leaseTransitions: 0 });
    const firstRenew = mem.lease?.spec?.renewTime;
    await until(() => mem.lease?.spec?.renewTime !== firstRenew);
    expect(a.log).toEqual(['started']);
  });

  it('renews with a PUT alone while nobody else writes, and reads only after a 409', async () => {
    const mem = new MemoryLeases();
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const a = candidate(mem.store(), 'a', shared);
    await until(() => a.elector.isLeader());
    const gets = mem.gets;
    const writes = mem.writes;
    await until(() => mem.writes >= writes + 5);
    expect(mem.gets).toBe(gets);

    // Someone else takes the Lease (a newer leader, say): a's next PUT fails with 409, it reads, and steps down.
    const current = structuredClone(mem.lease!);
    await mem.store().replace('ns', 'lock', { ...current, spec: { ...current.spec, holderIdentity: 'intruder' } });
    await until(() => a.log.includes('stopped'));
    expect(mem.gets).toBeGreaterThan(gets);
    expect(mem.lease?.spec?.holderIdentity).toBe('intruder');
  });

  it('lets one of two candidates lead, and hands over at once on a graceful stop', async () => {
    const mem = new MemoryLeases();
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const a = candidate(mem.store(), 'a', shared);
    const b = candidate(mem.store(), 'b', shared);
    await until(() => shared.leaders.size === 1);
    const [first, second] = a.elector.isLeader() ? [a, b] : [b, a];
    const firstId = first === a ? 'a' : 'b';
    const secondId = first === a ? 'b' : 'a';

    await first.elector.stop();
    expect(first.log).toEqual(['started', 'stopped']);
    expect(mem.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });

    await until(() => second.elector.isLeader());
    expect(mem.lease?.spec).toMatchObject({ holderIdentity: secondId, leaseTransitions: 1 });
    expect(shared.overlaps).toBe(0);
    expect(firstId).not.toBe(secondId);
  });

  it('a leader that cannot renew steps down before a standby takes over', async () => {
    const mem = new MemoryLeases();
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const partition = { down: false };
    const a = candidate(mem.store(partition), 'a', shared);
    await until(() => a.elector.isLeader());
    const b = candidate(mem.store(), 'b', shared);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.elector.isLeader()).toBe(false);

    partition.down = true; // a is cut off from the API server, as if its node lost the network
    await until(() => b.elector.isLeader());
    expect(a.log).toEqual(['started', 'stopped']);
    expect(shared.overlaps).toBe(0);
    expect(mem.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });

    partition.down = false; // a comes back as a standby and does not steal the Lease
    await new Promise((r) => setTimeout(r, 400));
    expect(a.elector.isLeader()).toBe(false);
    expect(mem.lease?.spec?.holderIdentity).toBe('b');
  });

  it('waits a full lease duration from its own observation before taking an unreleased Lease', async () => {
    const mem = new MemoryLeases();
    // A lease renewed "long ago" by a wall clock far behind: only local observation counts.
    const s = mem.store();
    await s.create('ns', {
      metadata: { name: 'lock', namespace: 'ns' },
      spec: { holderIdentity: 'ghost', leaseDurationSeconds: 1, renewTime: toMicroTime(new Date(0)), leaseTransitions: 4 },
    });
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const newLeaders: string[] = [];
    const b = candidate(s, 'b', shared, { onNewLeader: (id) => newLeaders.push(id) });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.elector.isLeader()).toBe(false);
    await until(() => b.elector.isLeader());
    expect(mem.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 5 });
    expect(newLeaders).toEqual(['ghost', 'b']);
  });

  it('treats a 409 on its write as a lost race', async () => {
    const mem = new MemoryLeases();
    const base = mem.store();
    let raced = false;
    const racing: LeaseStore = {
      ...base,
      replace: async (ns, name, lease) => {
        if (!raced) {
          raced = true;
          // Another candidate writes between our read and our write.
          const current = await base.get(ns, name);
          await base.replace(ns, name, { ...current, spec: { ...current.spec, holderIdentity: 'other' } });
        }
        return base.replace(ns, name, lease);
      },
    };
    await base.create('ns', { metadata: { name: 'lock', namespace: 'ns' }, spec: { holderIdentity: '' } });
    const shared = { leaders: new Set<string>(), overlaps: 0 };
    const a = candidate(racing, 'a', shared);
    await until(() => raced);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.elector.isLeader()).toBe(false);
    expect(mem.lease?.spec?.holderIdentity).toBe('other');
  });

  it('refuses timings that could let two leaders overlap', () => {
    const leases = new MemoryLeases().store();
    const base = { leases, namespace: 'ns', name: 'l', onStartedLeading: () => undefined };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow('lease duration');
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow('renew deadline');
  });
});

describe('toMicroTime', () => {
  it('writes six fractional digits', () => {
    expect(toMicroTime(new Date('2025-03-04T05:06:07.089Z'))).toBe('2025-03-04T05:06:07.089000Z');
  });
});
