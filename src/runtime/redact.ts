/**
 * The one redaction of the project: the controller's logger, its Events and
 * conditions, and the reference backend's logger all go through it.
 *
 * It is a safety net, not the primary defence: code should never hand a
 * secret to a log line, an Event or a condition, but a stray field must not
 * carry a pool key into a log aggregator or `kubectl describe`. What it
 * replaces, at any depth of nested objects and arrays:
 *
 * - values of keys that name credentials (`privateKey`, `tls.crt`,
 *   `authHeader`, `bearer`, `cookie`, `x-wp-signature`, ...);
 * - whole strings holding PEM, in clear or base64 (at each of the three byte
 *   alignments, so base64 of a PEM inside a longer base64 text is caught);
 * - `Bearer <token>` and JWT-shaped words inside strings (the rest of the
 *   string stays readable);
 * - any string containing one of the caller's registered secrets.
 *
 * @module
 */

export const REDACTED = '[redacted]';

export interface RedactOptions {
  /** Exact secrets (an admin token, say): any string containing one is replaced. Shorter than 16 characters are ignored. */
  readonly secrets?: readonly string[];
}

// Matched against the key lower-cased with separators removed, at its end, so `clientCert`,
// `tls.key`, `apiToken`, `authHeader`, `set-cookie` are caught while `secretName`/`tokenRef` are not.
const SENSITIVE_KEY_SUFFIXES = [
  'token',
  'key',
  'cert',
  'certificate',
  'crt',
  'pem',
  'csr',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'secrets',
  'authorization',
  'authheader',
  'auth',
  'bearer',
  'cookie',
  'cookies',
  'credential',
  'credentials',
  'signature',
];

// "-----BEGIN" in clear and in base64 at each of the three byte alignments.
const PEM_TEXT = /-----BEGIN|LS0tLS1CRUdJT|0tLS0tQkVHSU|tLS0tLUJFR0lO/;
const BEARER = /\b(Bearer|Basic)([ \t]+)[A-Za-z0-9._~+/=-]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;

export function isSensitiveKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  return SENSITIVE_KEY_SUFFIXES.some((s) => k.endsWith(s));
}

/** A string with credentials replaced: all of it when it holds PEM or a registered secret, else only bearer tokens and JWTs. */
export function redactText(text: string, options: RedactOptions = {}): string {
  if (PEM_TEXT.test(text)) return REDACTED;
  for (const s of options.secrets ?? []) if (s.length >= 16 && text.includes(s)) return REDACTED;
  return text.replace(BEARER, `$1$2${REDACTED}`).replace(JWT, REDACTED);
}

/** A copy of `value` with sensitive keys and key material replaced by {@link REDACTED}, at any depth. */
export function redact(value: unknown, options: RedactOptions = {}, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactText(value, options);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return redact({ name: value.name, message: value.message, ...(code === undefined ? {} : { code }) }, options, seen);
  }
  if (value instanceof Date) return value.toISOString();
  // Raw bytes in a log line are key material more often than not.
  if (value instanceof Uint8Array) return REDACTED;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, options, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSensitiveKey(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redact(v, options, seen);
  }
  return out;
}
