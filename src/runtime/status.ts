/**
 * Status is written only when it changes: a reconcile that finds nothing new
 * costs no API request, and the object's watchers see no empty update.
 */

/** Whether writing `next` would change anything (field order and absent fields aside). */
export function statusChanged<T>(current: T | undefined, next: T): boolean {
  return JSON.stringify(normalize(current ?? {})) !== JSON.stringify(normalize(next));
}

function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, normalize(v)]),
    );
  }
  return value;
}
