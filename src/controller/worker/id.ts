/**
 * Worker ids are chosen by the controller, not the backend, so that the
 * Worker object (named after its id) exists before registration: a
 * controller killed between the two steps finds the Worker again and
 * finishes the registration with the same id and key instead of leaving an
 * orphan in the backend.
 *
 * The id is a ULID (48-bit millisecond time, 80 random bits, Crockford
 * base32) in lowercase, because it becomes part of object names and label
 * values, which must be lowercase to be typed back by hand.
 */
import { ulid } from '../../protocol/index.js';

export const WORKER_ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{26}$/;

export function newWorkerId(now: number = Date.now()): string {
  return ulid(now).toLowerCase();
}

/** `<pool name>-<worker id>`, the documented Worker name. */
export function workerName(poolName: string, workerId: string): string {
  return `${poolName}-${workerId.toLowerCase()}`;
}
