import { DEFAULT_TOPIC_NAMESPACE } from './version.js';

/**
 * Topic a worker receives on (backend -> worker): `<ns>/readonly/<poolId>/<workerId>`.
 * "readonly" is from the worker's point of view: it may only subscribe here.
 */
export function readonlyTopic(poolId: string, workerId: string, ns: string = DEFAULT_TOPIC_NAMESPACE): string {
  return `${ns}/readonly/${poolId}/${workerId}`;
}

/** Topic a worker publishes on (worker -> backend): `<ns>/writeonly/<poolId>/<workerId>`. */
export function writeonlyTopic(poolId: string, workerId: string, ns: string = DEFAULT_TOPIC_NAMESPACE): string {
  return `${ns}/writeonly/${poolId}/${workerId}`;
}

/** The backend's subscription covering every worker's writeonly topic. */
export function allWriteonlyTopics(ns: string = DEFAULT_TOPIC_NAMESPACE): string {
  return `${ns}/writeonly/+/+`;
}

/** A parsed worker topic. */
export interface WorkerTopic {
  direction: 'readonly' | 'writeonly';
  poolId: string;
  workerId: string;
}

/** Parses a concrete worker topic; undefined when it is not one (wrong shape, wildcards, other namespace). */
export function parseWorkerTopic(topic: string, ns: string = DEFAULT_TOPIC_NAMESPACE): WorkerTopic | undefined {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== ns) return undefined;
  const [, direction, poolId, workerId] = parts as [string, string, string, string];
  if (direction !== 'readonly' && direction !== 'writeonly') return undefined;
  if (!poolId || !workerId || /[+#]/.test(poolId + workerId)) return undefined;
  return { direction, poolId, workerId };
}
