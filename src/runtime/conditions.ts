/**
 * Conditions in the standard Kubernetes shape. `lastTransitionTime` moves only
 * when the status flips, so that rewriting the same condition is not a change
 * and costs no API request.
 *
 * Messages go through the one redaction (`redact.ts`): they quote causes, and
 * `kubectl describe` must never show a credential.
 */
import { redactText } from './redact.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition. */
export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
  readonly reason: string;
  readonly message: string;
}

export interface ConditionInput {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

export function setCondition(
  current: readonly Condition[] | undefined,
  next: ConditionInput,
  observedGeneration: number | undefined,
  now: Date = new Date(),
): Condition[] {
  const list = [...(current ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const condition: Condition = {
    ...next,
    message: redactText(next.message),
    observedGeneration,
    lastTransitionTime:
      previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
