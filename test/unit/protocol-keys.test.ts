/**
 * Worker keys and CSRs of both protocol versions: RSA-2048 under version 1,
 * ECDSA P-256 under version 2, the version taken from the pool token. Each
 * CSR is also checked by OpenSSL, which shares no code with ours.
 */
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../../src/backend/ca.js';
import { CsrKeyTypeError, verifyCsrPem } from '../../src/protocol/csr-verify.js';
import {
  createCsr,
  encodePoolToken,
  generateWorkerKeyPair,
  parsePoolToken,
  workerKeyTypeFor,
  workerKeyTypesUpTo,
  type PemKeyPair,
} from '../../src/protocol/index.js';

/** What OpenSSL reads in a CSR: whether its signature verifies, and its text form. */
function openssl(csrPem: string): { verified: boolean; text: string } {
  const r = spawnSync('openssl', ['req', '-noout', '-verify', '-text'], { input: csrPem, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { verified: r.status === 0 && /verify OK/i.test(`${r.stdout}${r.stderr}`), text: r.stdout };
}

const spki = (pem: string): Buffer => createPublicKey(pem).export({ type: 'spki', format: 'der' });

let dir: string;
let ca: CertificateAuthority;
let ec: PemKeyPair;
let rsa: PemKeyPair;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-keys-'));
  ca = await CertificateAuthority.loadOrCreate(dir);
  [ec, rsa] = await Promise.all([generateWorkerKeyPair(workerKeyTypeFor(2)), generateWorkerKeyPair(workerKeyTypeFor(1))]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('negotiation through the pool token', () => {
  const token = (protocolVersion: 1 | 2): string =>
    encodePoolToken({ protocolVersion, apiUrl: 'https://b.example:9443', brokerUrl: 'mqtts://b.example:8883', poolId: '01JPOOL0000000000000000000', caCert: ca.certPem });

  test('a version 1 token gives RSA workers, a version 2 token ECDSA P-256 ones', () => {
    expect(workerKeyTypeFor(parsePoolToken(token(1)).protocolVersion)).toBe('rsa');
    expect(workerKeyTypeFor(parsePoolToken(token(2)).protocolVersion)).toBe('ecdsa-p256');
  });

  test('a backend of version 2 still takes the RSA keys of version 1; one of version 1 only those', () => {
    expect(workerKeyTypesUpTo(1)).toEqual(['rsa']);
    expect(workerKeyTypesUpTo(2)).toEqual(['rsa', 'ecdsa-p256']);
  });
});

describe('worker keys', () => {
  test('version 2: an ECDSA P-256 private key in PKCS#8 PEM, with its public key', () => {
    const key = createPrivateKey(ec.privateKeyPem);
    expect(ec.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.namedCurve]).toEqual(['ec', 'prime256v1']);
    expect(spki(ec.publicKeyPem).equals(spki(ec.privateKeyPem))).toBe(true);
  });

  test('version 1: an RSA-2048 private key in PKCS#1 PEM, as before', () => {
    const key = createPrivateKey(rsa.privateKeyPem);
    expect(rsa.privateKeyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    expect([key.asymmetricKeyType, key.asymmetricKeyDetails?.modulusLength]).toEqual(['rsa', 2048]);
  });
});

describe('CSRs', () => {
  test('an ECDSA CSR carries the key and the CN, is signed with ECDSA-SHA256, and verifies with OpenSSL and the backend', async () => {
    const csr = await createCsr(ec.privateKeyPem, '01JWORKER000000000000000000');
    const checked = openssl(csr);
    expect(checked.verified).toBe(true);
    expect(checked.text).toMatch(/Subject: CN ?= ?01JWORKER000000000000000000/);
    expect(checked.text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(checked.text).toMatch(/NIST CURVE: P-256/);
    // PEM as RFC 7468 has it: 64 characters a line, the labels on lines of their own.
    expect(csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----\n') && csr.endsWith('\n-----END CERTIFICATE REQUEST-----\n')).toBe(true);
    const lines = csr.split('\n').slice(1, -2);
    expect(lines.slice(0, -1).every((l) => l.length === 64)).toBe(true);
    expect(lines.at(-1)?.length).toBeGreaterThan(0);
    expect(lines.at(-1)?.length).toBeLessThanOrEqual(64);
    const verified = await verifyCsrPem(csr, workerKeyTypesUpTo(2));
    expect(verified.keyType).toBe('ecdsa-p256');
    expect(spki(verified.publicKeyPem).equals(spki(ec.publicKeyPem))).toBe(true);
  });

  test('an RSA CSR, made the same way, verifies as one of version 1', async () => {
    const csr = await createCsr(rsa.privateKeyPem);
    const checked = openssl(csr);
    expect(checked.verified).toBe(true);
    expect(checked.text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    const verified = await verifyCsrPem(csr, workerKeyTypesUpTo(1));
    expect(verified.keyType).toBe('rsa');
    expect(spki(verified.publicKeyPem).equals(spki(rsa.publicKeyPem))).toBe(true);
  });

  test('a backend of version 1 refuses an ECDSA CSR, naming what it takes and what it got', async () => {
    const err = await verifyCsrPem(await createCsr(ec.privateKeyPem), workerKeyTypesUpTo(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsrKeyTypeError);
    expect((err as Error).message).toBe('csr key must be RSA of at least 2048 bits, got ECDSA P-256');
  });

  test('a CSR whose signature was altered is refused', async () => {
    const csr = await createCsr(ec.privateKeyPem);
    const der = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01;
    const altered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(verifyCsrPem(altered, workerKeyTypesUpTo(2))).rejects.toThrow('csr signature does not verify');
  });

  test('keys of neither version are refused: another curve, a short RSA key, text that is no CSR', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    await expect(createCsr(p384.privateKey)).rejects.toThrow('key must be RSA of at least 2048 bits or ECDSA P-256, got EC on curve secp384r1');
    const short = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    await expect(createCsr(short.privateKey)).rejects.toThrow('got RSA of 1024 bits');
    await expect(verifyCsrPem('hello', workerKeyTypesUpTo(2))).rejects.toThrow('csr is not a PEM certificate request');
  });
});

describe('the backend CA', () => {
  test('issues a client certificate for an ECDSA key: that key, signed by the CA, for client authentication only', async () => {
    const pem = await ca.issueClient(ec.publicKeyPem, '01JWORKER000000000000000000', '01JPOOL0000000000000000000');
    const cert = new X509Certificate(pem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.publicKey.export({ type: 'spki', format: 'der' }).equals(spki(ec.publicKeyPem))).toBe(true);
    expect(cert.subject).toBe('CN=01JWORKER000000000000000000\nOU=01JPOOL0000000000000000000');
    expect(cert.ca).toBe(false);
    const text = spawnSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' }).stdout;
    expect(text).toMatch(/X509v3 Extended Key Usage: *\n *TLS Web Client Authentication\n/);
    // An ECDSA key signs only; RSA keys keep key encipherment, as before.
    expect(text).toMatch(/X509v3 Key Usage: critical\n *Digital Signature\n/);
    const rsaText = spawnSync('openssl', ['x509', '-noout', '-text'], { input: await ca.issueClient(rsa.publicKeyPem, 'w'), encoding: 'utf8' }).stdout;
    expect(rsaText).toMatch(/X509v3 Key Usage: critical\n *Digital Signature, Key Encipherment\n/);
  });

  test('a CA written before (loaded from its files) signs the same way', async () => {
    const again = await CertificateAuthority.loadOrCreate(dir);
    expect(again.certPem).toBe(ca.certPem);
    const cert = new X509Certificate(await again.issueClient(ec.publicKeyPem, 'w'));
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });
});
