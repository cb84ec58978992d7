import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32
 * characters. Sortable by creation time, URL-, topic- and DNS-safe (lowercased
 * in Kubernetes names), and the same shape as the real product's ids.
 */
export function ulid(now: number = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(16);
  let rand = '';
  for (let i = 0; i < 16; i++) rand += CROCKFORD[(bytes[i] as number) % 32];
  return time + rand;
}

/** Matches ids made by {@link ulid}. */
export const ULID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{26}$/;
