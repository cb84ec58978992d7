/**
 * What this process knows of its runs that the informer cache does not show
 * yet. In memory only, and only ever a shortcut: the Pods in the API are the
 * runs' state, and a restarted controller rebuilds everything from them.
 */
import type { RunStatus } from '../../protocol/index.js';

export class RunTracker {
  /**
   * Runs whose Pod this process created but the cache has not shown yet, by
   * worker key. Until it does, the worker counts as busy: announcing "idle"
   * after accepting a run would make the backend fail that run.
   */
  private readonly starting = new Map<string, string>();
  /**
   * Progress reports (`pod-created`, `running`) already sent, by Pod uid. In
   * memory only: writing each to the Pod would double a run's API writes, and
   * after a restart re-sending one is harmless (the backend ignores a status
   * that does not move a run forward). The end of a run is recorded on the
   * Pod, because the release of its finalizer depends on it.
   */
  private readonly progress = new Map<string, RunStatus>();
  /**
   * Ends written to their Pod (annotation set, finalizer removed) that the
   * cache does not show yet, by Pod uid: until it does, the run counts as
   * ended (not reported again, its finalizer not removed twice).
   */
  private readonly ends = new Map<string, RunStatus>();
  /**
   * The last run whose end this process reported, by worker key: the Worker's
   * status may still name it after its Pod is gone from the cache, and that
   * is not a run that vanished.
   */
  private readonly lastEnded = new Map<string, string>();

  /** The run this process started on the worker and the cache does not show yet. */
  startingRun(workerKey: string): string | undefined {
    return this.starting.get(workerKey);
  }

  /** A run Pod was created (or found) for `runId` on the worker. */
  started(workerKey: string, runId: string): void {
    this.starting.set(workerKey, runId);
  }

  /** The cache shows these runs of the worker: a run being started among them is no longer only ours to know. */
  seen(workerKey: string, runIds: Iterable<string>): void {
    const runId = this.starting.get(workerKey);
    if (runId === undefined) return;
    for (const seen of runIds) {
      if (seen === runId) {
        this.starting.delete(workerKey);
        return;
      }
    }
  }

  /** The last progress report sent for the Pod, if any. */
  progressOf(podUid: string): RunStatus | undefined {
    return this.progress.get(podUid);
  }

  /** A progress report for the Pod reached the broker. */
  reported(podUid: string, status: RunStatus): void {
    this.progress.set(podUid, status);
  }

  /** The end written to the Pod, while the cache may not show it yet. */
  endOf(podUid: string): RunStatus | undefined {
    return this.ends.get(podUid);
  }

  /** The run's end was reported and written to its Pod. */
  endWritten(workerKey: string, runId: string, podUid: string, status: RunStatus): void {
    this.progress.delete(podUid);
    this.ends.set(podUid, status);
    this.lastEnded.set(workerKey, runId);
  }

  /** Whether this process reported the end of `runId` on the worker. */
  endedHere(workerKey: string, runId: string): boolean {
    return this.lastEnded.get(workerKey) === runId;
  }

  /** The Worker is gone: nothing of it needs remembering. */
  forgetWorker(workerKey: string): void {
    this.starting.delete(workerKey);
    this.lastEnded.delete(workerKey);
  }

  /** The Pod is gone, or the cache shows its end: nothing of it needs remembering. */
  forgetPod(podUid: string): void {
    this.progress.delete(podUid);
    this.ends.delete(podUid);
  }
}
