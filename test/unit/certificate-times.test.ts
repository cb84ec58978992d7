import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { certificateTimes, renewalTime } from '../../src/controller/worker/certificate.js';

const dir = mkdtempSync(join(tmpdir(), 'kwc-cert-times-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed ECDSA certificate from openssl, valid `days` from now, with this serial. */
function certificate(serial: string, days: number): string {
  const out = join(dir, `${serial}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${serial}.key`), '-out', out, '-subj', '/CN=w', '-days', String(days), '-set_serial', `0x${serial}`], { stdio: 'ignore' });
  return readFileSync(out, 'utf8');
}

describe('certificateTimes', () => {
  const a = certificate('0a11', 30);
  const b = certificate('0b22', 90);

  test('reads the serial and validity a renewal is planned from', () => {
    const t = certificateTimes(a);
    expect(t?.serial).toBe('0A11');
    expect(((t?.notAfter ?? 0) - (t?.notBefore ?? 0)) / 86_400_000).toBe(30);
    expect(renewalTime(t as NonNullable<typeof t>)).toBe((t?.notBefore ?? 0) + 20 * 86_400_000);
  });

  test('each certificate keeps its own times when read again and in turns (remembered by content, not by the last one read)', () => {
    const first = { a: certificateTimes(a), b: certificateTimes(b) };
    for (let i = 0; i < 3; i++) {
      expect(certificateTimes(b)).toEqual(first.b);
      expect(certificateTimes(a)).toEqual(first.a);
    }
    expect(first.a?.serial).toBe('0A11');
    expect(first.b?.serial).toBe('0B22');
  });

  test('what is not a certificate has no times, also the second time', () => {
    expect(certificateTimes('not a certificate')).toBeUndefined();
    expect(certificateTimes('not a certificate')).toBeUndefined();
    expect(certificateTimes(undefined)).toBeUndefined();
  });
});
