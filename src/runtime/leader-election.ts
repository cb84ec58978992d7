/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics
 * so it interoperates with (and behaves like) every other controller's election:
 *
 * - a candidate takes the Lease when it is free or its holder has not renewed
 *   for the holder's `leaseDurationSeconds`, measured on the candidate's own
 *   monotonic clock from when it last saw the Lease change, so clock skew
 *   between nodes cannot cut a lease short;
 * - every write carries the resourceVersion it read; a 409 means another
 *   candidate won the race;
 * - the leader renews every retry period with a PUT of the Lease it last wrote
 *   (reading it only after a 409) and steps down (onStoppedLeading) if
 *   it could not renew within the renew deadline, which is shorter than the
 *   lease duration, so it has stopped before anyone else may start;
 * - a graceful stop releases the Lease (empty holder, 1s duration) so a standby
 *   takes over at once instead of after a full lease duration.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlreadyExists, isConflict, isNotFound } from './errors.js';
import { LEASES, type KubeClient, type Lease } from './k8s-client.js';
import { silentLogger, type Logger } from './log.js';

/** The three Lease operations the elector needs; {@link kubeLeaseStore} is the real one. */
export interface LeaseStore {
  get(namespace: string, name: string): Promise<Lease>;
  create(namespace: string, lease: Lease): Promise<Lease>;
  /** Must fail with 409 if `lease.metadata.resourceVersion` is stale. */
  replace(namespace: string, name: string, lease: Lease): Promise<Lease>;
}

export function kubeLeaseStore(client: KubeClient): LeaseStore {
  return {
    get: (ns, name) => client.get(LEASES, ns, name),
    create: (ns, lease) => client.create(LEASES, ns, lease),
    replace: (ns, name, lease) => client.replace(LEASES, ns, name, lease),
  };
}

export interface LeaderElectionOptions {
  readonly leases: LeaseStore;
  readonly namespace: string;
  readonly name: string;
  /** Unique per process; defaults to {@link defaultIdentity}. */
  readonly identity?: string;
  /** How long a standby waits after the last renewal it saw. Default 15s. */
  readonly leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it steps down. Default 10s. */
  readonly renewDeadlineMs?: number;
  /** Interval between acquire/renew attempts. Default 2s. */
  readonly retryPeriodMs?: number;
  /**
   * Called when this process becomes leader. `signal` aborts when leadership
   * ends, for work that must stop then (reconcilers, worker sessions).
   */
  readonly onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called when leadership ends, lost or given up. */
  readonly onStoppedLeading?: () => void;
  /** Called whenever the observed holder changes (including to ourselves). */
  readonly onNewLeader?: (identity: string) => void;
  readonly logger?: Logger;
}

/** Hostname plus a random suffix: unique even for two processes in one pod or on one laptop. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(4).toString('hex')}`;
}

/** A Lease's MicroTime: RFC 3339 with exactly six fractional digits, which the API server requires. */
export function toMicroTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

interface Observation {
  readonly holder: string;
  readonly renewTime: string | undefined;
  readonly durationMs: number;
  /** Local monotonic time at which this observation was first made. */
  readonly at: number;
}

class DeadlineExceeded extends Error {}

/** One candidate. {@link LeaderElector.run} until {@link LeaderElector.stop}. */
export class LeaderElector {
  readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private lease: Lease | undefined;
  private observed: Observation | undefined;
  private leading = false;
  private running: Promise<void> | undefined;

  constructor(private readonly options: LeaderElectionOptions) {
    this.identity = options.identity ?? defaultIdentity();
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error('leader election: lease duration must be greater than the renew deadline');
    }
    if (this.renewDeadlineMs <= this.retryPeriodMs * 1.2) {
      throw new Error('leader election: renew deadline must be greater than 1.2 x the retry period');
    }
    this.log = (options.logger ?? silentLogger).with({
      lease: `${options.namespace}/${options.name}`,
      identity: this.identity,
    });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns, leads, and campaigns again after losing, until {@link LeaderElector.stop}.
   * Resolves once stopped (and, if it was leading, the Lease released).
   */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Stops campaigning; a leader steps down and releases the Lease. Resolves when done. */
  async stop(): Promise<void> {
    this.stopController.abort();
    await this.running;
  }

  private get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (!(await this.acquire())) break;
      const leadership = new AbortController();
      this.leading = true;
      this.log.info('became leader');
      void Promise.resolve()
        .then(() => this.options.onStartedLeading(leadership.signal))
        .catch((error: unknown) => this.log.error('onStartedLeading failed', { error }));
      await this.renewUntilLost();
      this.leading = false;
      leadership.abort();
      this.callback('onStoppedLeading', () => this.options.onStoppedLeading?.());
      if (this.stopped) await this.release();
      else this.log.warn('lost leadership');
    }
  }

  /** Retries until the Lease is ours (true) or we are stopped (false). */
  private async acquire(): Promise<boolean> {
    while (!this.stopped) {
      if (await this.attempt()) return true;
      if (!(await this.pause(this.retryPeriodMs * (1 + 0.2 * Math.random())))) return false;
    }
    return false;
  }

  private async renewUntilLost(): Promise<void> {
    let lastRenew = performance.now();
    while (await this.pause(this.retryPeriodMs)) {
      const left = this.renewDeadlineMs - (performance.now() - lastRenew);
      if (left <= 0) return;
      // A hung request must not keep us "leading" past the deadline.
      if (await this.attempt(left)) lastRenew = performance.now();
      else if (performance.now() - lastRenew >= this.renewDeadlineMs) return;
    }
  }

  /** One acquire-or-renew try; failures are logged and count as "not leader". */
  private async attempt(timeoutMs?: number): Promise<boolean> {
    try {
      if (timeoutMs === undefined) return await this.tryAcquireOrRenew();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceeded('renew deadline reached')), timeoutMs);
      });
      try {
        return await Promise.race([this.tryAcquireOrRenew(), deadline]);
      } finally {
        clearTimeout(timer);
      }
    } catch (error) {
      this.log.warn('lease update failed', { error });
      return false;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name } = this.options;
    const now = new Date();
    const durationSeconds = Math.ceil(this.leaseDurationMs / 1000);
    const claim = (lease: Lease, mine: boolean): Lease => ({
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: toMicroTime(now),
        acquireTime: mine ? lease.spec?.acquireTime : toMicroTime(now),
        leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    });
    // The leader renews from the Lease it last wrote: one PUT per period, no GET.
    // A 409 means someone else wrote (or our last write landed unseen): read it
    // and decide as any candidate would.
    if (this.lease?.spec?.holderIdentity === this.identity && this.lease.metadata?.resourceVersion) {
      try {
        this.observe(await this.options.leases.replace(namespace, name, claim(this.lease, true)));
        return true;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    let current: Lease;
    try {
      current = await this.options.leases.get(namespace, name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        const created = await this.options.leases.create(namespace, {
          metadata: { name, namespace },
          spec: {
            holderIdentity: this.identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: toMicroTime(now),
            renewTime: toMicroTime(now),
            leaseTransitions: 0,
          },
        });
        this.observe(created);
        return true;
      } catch (createError) {
        if (isAlreadyExists(createError) || isConflict(createError)) return false;
        throw createError;
      }
    }

    this.observe(current);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const mine = holder === this.identity;
    if (holder !== '' && !mine && !this.observedExpired()) return false;

    try {
      this.observe(await this.options.leases.replace(namespace, name, claim(current, mine)));
      return true;
    } catch (error) {
      if (isConflict(error)) return false; // another candidate wrote first
      throw error;
    }
  }

  /** Remembers the Lease and, if it changed, when we first saw this version of it. */
  private observe(lease: Lease): void {
    this.lease = lease;
    const holder = lease.spec?.holderIdentity ?? '';
    const renewTime = lease.spec?.renewTime;
    const prev = this.observed;
    if (prev && prev.holder === holder && prev.renewTime === renewTime) return;
    this.observed = {
      holder,
      renewTime,
      durationMs: (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000,
      at: performance.now(),
    };
    if (prev?.holder !== holder && holder !== '') {
      this.log.info('leader observed', { leader: holder });
      this.callback('onNewLeader', () => this.options.onNewLeader?.(holder));
    }
  }

  private observedExpired(): boolean {
    const o = this.observed;
    return o === undefined || performance.now() - o.at >= o.durationMs;
  }

  /** Hands the Lease over: a standby sees an empty holder and takes it on its next try. */
  private async release(): Promise<void> {
    if (this.lease?.spec?.holderIdentity !== this.identity) return;
    const now = toMicroTime(new Date());
    try {
      // Re-read: a renewal that timed out on our side may still have landed and moved the resourceVersion.
      const lease = await this.options.leases.get(this.options.namespace, this.options.name);
      if (lease.spec?.holderIdentity !== this.identity) return;
      await this.options.leases.replace(this.options.namespace, this.options.name, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
      });
      this.log.info('released the lease');
    } catch (error) {
      // Someone else already holds it, or the API is gone: the lease then simply expires.
      this.log.warn('could not release the lease', { error });
    }
  }

  /** Sleeps unless stopped; false means stopped. */
  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stopController.signal });
      return true;
    } catch {
      return false;
    }
  }

  private callback(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log.error(`${name} threw`, { error });
    }
  }
}
