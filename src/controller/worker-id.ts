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
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
export const WORKER_ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{26}$/;

export function newWorkerId(now: number = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const random = randomBytes(16);
  let rest = '';
  for (let i = 0; i < 16; i++) rest += ALPHABET[random[i] % 32];
  return time + rest;
}

/** `<pool name>-<worker id>`, the documented Worker name. */
export function workerName(poolName: string, workerId: string): string {
  return `${poolName}-${workerId.toLowerCase()}`;
}
