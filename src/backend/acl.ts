import { DEFAULT_TOPIC_NAMESPACE } from '../protocol/version.js';
import { readonlyTopic, writeonlyTopic } from '../protocol/topics.js';

/** Who a broker client is, from its verified certificate. */
export type BrokerIdentity = { kind: 'backend' } | { kind: 'worker'; workerId: string; poolId: string };

/**
 * The topic rules, the same for the embedded broker and the mosquitto ACL
 * file in docs/mosquitto.md:
 *
 * - a worker may subscribe to exactly its readonly topic and publish to
 *   exactly its writeonly topic (no wildcards, nothing else);
 * - the backend may subscribe to the writeonly topics and publish to the
 *   readonly ones.
 */
export function maySubscribe(id: BrokerIdentity, filter: string, ns: string = DEFAULT_TOPIC_NAMESPACE): boolean {
  if (id.kind === 'worker') return filter === readonlyTopic(id.poolId, id.workerId, ns);
  return filter === `${ns}/writeonly/+/+` || filter === `${ns}/writeonly/#` || isConcrete(filter, ns, 'writeonly');
}

export function mayPublish(id: BrokerIdentity, topic: string, ns: string = DEFAULT_TOPIC_NAMESPACE): boolean {
  if (id.kind === 'worker') return topic === writeonlyTopic(id.poolId, id.workerId, ns);
  return isConcrete(topic, ns, 'readonly');
}

function isConcrete(topic: string, ns: string, direction: 'readonly' | 'writeonly'): boolean {
  const parts = topic.split('/');
  return parts.length === 4 && parts[0] === ns && parts[1] === direction && parts.slice(2).every((p) => p.length > 0 && !/[+#]/.test(p));
}
