/**
 * Which Workers to add, drain or keep when a pool's size changes. Pure, so
 * the rule that protects runs in progress is tested without a cluster.
 *
 * Scale-down never takes a busy worker while an idle one is left: workers
 * that never registered go first, then idle ones (the one idle longest
 * first, as the backend's own safe scale-down does), and busy ones last; a
 * busy worker chosen this way is only marked draining and leaves after its
 * run. Scale-up first takes back draining workers (no new key, no new
 * registration), then creates new ones.
 */

export interface WorkerSummary {
  readonly name: string;
  readonly draining: boolean;
  readonly deleting: boolean;
  readonly registered: boolean;
  readonly busy: boolean;
  /** RFC 3339; when the worker last became idle, else its creation time. */
  readonly idleSince: string;
}

export interface ScalePlan {
  readonly create: number;
  readonly drain: readonly string[];
  readonly undrain: readonly string[];
}

function removalRank(w: WorkerSummary): number {
  if (!w.registered) return 0;
  if (!w.busy) return 1;
  return 2;
}

export function planScale(desired: number, workers: readonly WorkerSummary[]): ScalePlan {
  const live = workers.filter((w) => !w.deleting);
  const active = live.filter((w) => !w.draining);
  if (active.length < desired) {
    const missing = desired - active.length;
    // A busy draining worker is certain to stay if taken back; an idle one would be removed soon anyway.
    const undrain = live
      .filter((w) => w.draining)
      .sort((a, b) => Number(b.busy) - Number(a.busy) || a.name.localeCompare(b.name))
      .slice(0, missing)
      .map((w) => w.name);
    return { create: missing - undrain.length, drain: [], undrain };
  }
  if (active.length > desired) {
    const drain = [...active]
      .sort((a, b) => removalRank(a) - removalRank(b) || a.idleSince.localeCompare(b.idleSince) || a.name.localeCompare(b.name))
      .slice(0, active.length - desired)
      .map((w) => w.name);
    return { create: 0, drain, undrain: [] };
  }
  return { create: 0, drain: [], undrain: [] };
}
