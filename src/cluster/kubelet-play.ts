/**
 * The played kubelet, for the one place that still needs it: the benchmark at
 * N = 1000 (bench/bench.ts, bench/lib/cluster.ts), where a thousand run Pods
 * cannot run on the two cores of the machines this project is measured on,
 * so the bench's cluster has no node and the bench writes the status a
 * kubelet would (`pods/status`); the controller reacts as it would in a real
 * cluster. Everywhere else (the demo, the tests, the bench up to the
 * kubelet's 110 Pods) a real kubelet runs the Pods.
 */

function containerStatus(name: string, image: string, state: Record<string, unknown>, ready: boolean): Record<string, unknown> {
  return { name, image, imageID: '', ready, restartCount: 0, ...(state['running'] !== undefined ? { started: true } : {}), state };
}

function completed(now: string, exitCode = 0): Record<string, unknown> {
  return { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: now, finishedAt: now } };
}

/** Every container of the run Pod started: `init` completed, `launcher-grpc` and `worker` run. */
export function runningPodStatus(now = new Date().toISOString()): Record<string, unknown> {
  return {
    phase: 'Running',
    startTime: now,
    conditions: [
      { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      { type: 'Initialized', status: 'True', lastTransitionTime: now },
      { type: 'Ready', status: 'True', lastTransitionTime: now },
    ],
    initContainerStatuses: [
      containerStatus('init', 'launcher', completed(now), false),
      containerStatus('launcher-grpc', 'launcher', { running: { startedAt: now } }, true),
    ],
    containerStatuses: [containerStatus('worker', 'runner', { running: { startedAt: now } }, true)],
  };
}
