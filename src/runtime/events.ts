/**
 * Kubernetes Events for what a user must see (`kubectl describe`,
 * `kubectl events`). Repeats of the same event on the same object within
 * ten minutes bump its count instead of creating another object, as
 * client-go's recorder does, so a pool stuck on bad credentials does not
 * flood the API.
 */
import { randomBytes } from 'node:crypto';
import { EVENTS, type CoreEvent, type KubeClient } from './k8s-client.js';
import type { Logger } from './log.js';
import { redactText } from './redact.js';

export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name?: string; readonly namespace?: string; readonly uid?: string };
}

export type EventType = 'Normal' | 'Warning';

const DEDUPE_WINDOW_MS = 10 * 60 * 1000;
const MAX_REMEMBERED = 4096;

interface Seen {
  readonly name: string;
  readonly namespace: string;
  count: number;
  at: number;
}

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    /** `source.component` and `reportingComponent`: who writes the events. */
    private readonly component: string,
    /** `reportingInstance`: which replica. */
    private readonly instance: string,
  ) {}

  /** Never throws: an event that cannot be written is logged, not allowed to fail a reconcile. */
  async record(target: EventTarget, type: EventType, reason: string, rawMessage: string): Promise<void> {
    // Messages quote causes (API errors, backend answers): they go through the one redaction.
    const message = redactText(rawMessage);
    const namespace = target.metadata.namespace ?? 'default';
    const key = `${target.metadata.uid}\0${type}\0${reason}\0${message}`;
    const now = Date.now();
    const previous = this.seen.get(key);
    const timestamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      if (previous !== undefined && now - previous.at < DEDUPE_WINDOW_MS) {
        previous.count++;
        previous.at = now;
        await this.client.mergePatch(EVENTS, previous.namespace, previous.name, { count: previous.count, lastTimestamp: timestamp });
        return;
      }
      const name = `${target.metadata.name}.${randomBytes(8).toString('hex')}`;
      const event: CoreEvent = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.metadata.name,
          namespace,
          uid: target.metadata.uid,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        count: 1,
        firstTimestamp: timestamp,
        lastTimestamp: timestamp,
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.instance,
      };
      await this.client.create(EVENTS, namespace, event);
      if (this.seen.size >= MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value as string);
      this.seen.set(key, { name, namespace, count: 1, at: now });
    } catch (err) {
      // The event may have expired (TTL) while we remembered it: forget it and create anew next time.
      this.seen.delete(key);
      this.log.warn('cannot record event', { reason, err: String(err) });
    }
  }
}
