/**
 * When a worker's certificate is renewed. The backend issues certificates
 * for a bounded time (30 days by default); the controller renews each once
 * two thirds of its lifetime have passed, as cert-manager does by default,
 * which leaves a third of it (10 days by default) to retry a failing renewal
 * before the worker is locked out.
 *
 * Read with Node's X.509 parser: nothing here depends on the key type.
 *
 * @module
 */
import { createHash, X509Certificate } from 'node:crypto';

export interface CertificateTimes {
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/**
 * Certificates read before, by SHA-256 of their PEM. Every reconcile of a
 * worker reads its certificate, four times per worker in a scale-out: at
 * 1000 workers X509Certificate took 1.35 s of the controller's main thread
 * (`npm run bench -- --workers 1000 --cpu-prof`); a hash takes microseconds.
 * Bounded, oldest first out: past the bound it only costs the parse again.
 */
const known = new Map<string, CertificateTimes | undefined>();
const CERTIFICATE_TIMES_CACHE_SIZE = 4096;

/** Serial and validity of a PEM certificate; undefined when it is not one. */
export function certificateTimes(pem: string | undefined): CertificateTimes | undefined {
  if (pem === undefined) return undefined;
  const digest = createHash('sha256').update(pem).digest('base64');
  if (known.has(digest)) return known.get(digest);
  const times = parseTimes(pem);
  if (known.size >= CERTIFICATE_TIMES_CACHE_SIZE) known.delete(known.keys().next().value as string);
  known.set(digest, times);
  return times;
}

function parseTimes(pem: string): CertificateTimes | undefined {
  try {
    const cert = new X509Certificate(pem);
    return { serial: cert.serialNumber, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
  } catch {
    return undefined;
  }
}

/** Share of the lifetime after which the certificate is renewed. */
export const RENEW_AT_FRACTION = 2 / 3;

/** When the certificate is due for renewal (ms since the epoch). */
export function renewalTime(t: CertificateTimes): number {
  return t.notBefore + Math.floor((t.notAfter - t.notBefore) * RENEW_AT_FRACTION);
}
