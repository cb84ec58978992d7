import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, test } from 'vitest';
import { readPoolCredentials } from '../../src/controller/backend/credentials.js';
import type { Secret } from '../../src/runtime/k8s-client.js';
import { encodePoolToken, parsePoolToken } from '../../src/protocol/index.js';
import type { WorkerPoolSpec } from '../../src/api/types.js';

let token = '';
let keyB64 = '';

beforeAll(() => {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date();
  cert.validity.notAfter = new Date(Date.now() + 3600_000);
  cert.setSubject([{ name: 'commonName', value: 'ca' }]);
  cert.setIssuer([{ name: 'commonName', value: 'ca' }]);
  cert.sign(keys.privateKey);
  token = encodePoolToken({
    protocolVersion: 1,
    apiUrl: 'https://127.0.0.1:1',
    brokerUrl: 'mqtts://127.0.0.1:2',
    poolId: '01hf7yat00aaaaaaaaaaaaaaaa',
    caCert: forge.pki.certificateToPem(cert),
  });
  const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  keyB64 = Buffer.from(pem).toString('base64');
});

const spec: WorkerPoolSpec = {
  poolSize: 1,
  token: { secretKeyRef: { name: 'creds', key: 'token' } },
  privateKey: { secretKeyRef: { name: 'creds', key: 'privateKey' } },
};

function secret(data: Record<string, string>): Secret {
  return { metadata: { name: 'creds', namespace: 'ns' }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
}

describe('readPoolCredentials', () => {
  test('reads the documented Secret', () => {
    const result = readPoolCredentials(spec, 'ns', () => secret({ token, privateKey: keyB64 }));
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.credentials.token.poolId).toBe('01hf7yat00aaaaaaaaaaaaaaaa');
      expect(result.credentials.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
    }
  });

  const cases: [string, () => Secret | undefined, string, string][] = [
    ['missing Secret', () => undefined, 'SecretNotFound', 'secret ns/creds (spec.token.secretKeyRef) not found'],
    ['missing key', () => secret({ token }), 'SecretKeyMissing', 'secret ns/creds has no key "privateKey" (spec.privateKey.secretKeyRef.key)'],
    ['token not base64', () => secret({ token: 'not base64 at all!', privateKey: keyB64 }), 'InvalidToken', 'token is not base64-encoded JSON'],
    ['key not base64', () => secret({ token, privateKey: `${keyB64.slice(0, 100)}*${keyB64.slice(100)}` }), 'InvalidPrivateKey', 'unable to base64 decode privateKey: illegal base64 data at input byte 100'],
    ['key not a PEM', () => secret({ token, privateKey: Buffer.from('hello').toString('base64') }), 'InvalidPrivateKey', 'privateKey is not a PEM-encoded RSA private key'],
  ];
  test.each(cases)('%s', (_name, lookup, reason, message) => {
    const result = readPoolCredentials(spec, 'ns', lookup);
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.message).toContain(message);
  });

  test('a pool without credentials, or with only one of the two, says so', () => {
    const message = 'spec.token and spec.privateKey are not set: the pool has no credentials to register workers with';
    expect(readPoolCredentials({ poolSize: 1 }, 'ns', () => undefined)).toEqual({ ok: false, reason: 'CredentialsNotConfigured', message });
    const lookup = () => secret({ token, privateKey: keyB64 });
    expect(readPoolCredentials({ poolSize: 1, token: spec.token }, 'ns', lookup)).toMatchObject({ ok: false, reason: 'CredentialsNotConfigured' });
    expect(readPoolCredentials({ poolSize: 1, privateKey: spec.privateKey }, 'ns', lookup)).toMatchObject({ ok: false, reason: 'CredentialsNotConfigured' });
  });

  test('a key whose value is only blanks is missing', () => {
    expect(readPoolCredentials(spec, 'ns', () => secret({ token, privateKey: ' \n\t' }))).toEqual({
      ok: false,
      reason: 'SecretKeyMissing',
      message: 'secret ns/creds has no key "privateKey" (spec.privateKey.secretKeyRef.key)',
    });
  });

  test('the fingerprint follows the credentials', () => {
    const a = readPoolCredentials(spec, 'ns', () => secret({ token, privateKey: keyB64 }));
    const b = readPoolCredentials(spec, 'ns', () => secret({ token, privateKey: keyB64 }));
    expect(a.ok && b.ok && a.credentials.fingerprint === b.credentials.fingerprint).toBe(true);
  });

  test('the fingerprint changes when only the private key changes, or only the token', () => {
    // Backend clients are cached by fingerprint: a rotated key with the same
    // token must not reuse the client that signs with the old key.
    const otherKey = Buffer.from(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()).toString('base64');
    const otherToken = encodePoolToken({ ...parsePoolToken(token), apiUrl: 'https://127.0.0.1:3' });
    const fingerprint = (t: string, k: string) => {
      const result = readPoolCredentials(spec, 'ns', () => secret({ token: t, privateKey: k }));
      if (!result.ok) throw new Error(result.message);
      return result.credentials.fingerprint;
    };
    const base = fingerprint(token, keyB64);
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(token, otherKey)).not.toBe(base);
    expect(fingerprint(otherToken, keyB64)).not.toBe(base);
    expect(fingerprint(otherToken, otherKey)).not.toBe(fingerprint(token, otherKey));
  });
});
