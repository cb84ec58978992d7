/**
 * The local control plane has no kubelet (and no scheduler), so no container
 * ever starts. The demo, the end-to-end tests and the benchmark write the Pod
 * statuses a kubelet would write (`pods/status`), and the controller reacts to
 * them exactly as it would in a real cluster. One definition for all three.
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

/** The worker container ended with `exitCode`; the Pod Succeeded (0) or Failed. */
export function endedPodStatus(exitCode: number, now = new Date().toISOString()): Record<string, unknown> {
  return {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: now },
      ],
      initContainerStatuses: [
        containerStatus('init', 'launcher', completed(now), false),
        containerStatus('launcher-grpc', 'launcher', completed(now), false),
      ],
      containerStatuses: [containerStatus('worker', 'runner', completed(now, exitCode), false)],
  };
}
