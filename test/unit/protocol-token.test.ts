import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../../src/backend/ca.js';
import { decodeSecretPrivateKey, encodePoolToken, parsePoolToken, PoolCredentialsError, type PoolToken } from '../../src/protocol/token.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

let base: PoolToken;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-token-'));
  const ca = await CertificateAuthority.loadOrCreate(dir);
  await rm(dir, { recursive: true, force: true });
  base = { protocolVersion: 1, apiUrl: 'https://backend.example:9443', brokerUrl: 'mqtts://backend.example:8883', poolId: '01JPOOL0000000000000000000', caCert: ca.certPem };
});

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64');

function tokenError(text: string): string {
  try {
    parsePoolToken(text);
  } catch (err) {
    expect(err).toBeInstanceOf(PoolCredentialsError);
    expect((err as PoolCredentialsError).field).toBe('token');
    return (err as Error).message;
  }
  throw new Error('token was accepted');
}

describe('pool token', () => {
  test('round-trips, tolerating surrounding whitespace and line wrapping', () => {
    const text = encodePoolToken(base);
    expect(parsePoolToken(text)).toEqual(base);
    expect(parsePoolToken(`  ${text.replace(/(.{76})/g, '$1\n')}\n`)).toEqual(base);
    expect(parsePoolToken(encodePoolToken({ ...base, topicNamespace: 'acme' })).topicNamespace).toBe('acme');
  });

  test('names the cause of each defect', () => {
    expect(tokenError('e30=!')).toBe('token is not base64-encoded JSON: illegal base64 data at input byte 4');
    expect(tokenError(Buffer.from('not json').toString('base64'))).toBe('token is not base64-encoded JSON: the decoded text is invalid JSON at byte 1');
    expect(tokenError(b64([1]))).toBe('token is not base64-encoded JSON: the decoded value is not a JSON object');
    const { brokerUrl: _omit, ...noBroker } = base;
    void _omit;
    expect(tokenError(b64(noBroker))).toBe('token field "brokerUrl" is missing');
    expect(tokenError(b64({ ...base, poolId: 7 }))).toBe('token field "poolId" must be a string, got number');
    expect(tokenError(b64({ ...base, protocolVersion: 3 }))).toBe('token protocolVersion 3 is not supported (this build speaks 1 and 2)');
    expect(tokenError(b64({ ...base, apiUrl: 'http://x:1' }))).toBe('token field "apiUrl" must use https:, got "http://x:1"');
    expect(tokenError(b64({ ...base, brokerUrl: 'nope' }))).toBe('token field "brokerUrl" is not a URL: "nope"');
    expect(tokenError(b64({ ...base, caCert: 'garbage' }))).toMatch(/^token field "caCert" is not a PEM certificate/);
    expect(tokenError(b64({ ...base, topicNamespace: 'a/b' }))).toMatch(/^token field "topicNamespace" must be a single topic level/);
  });

  test('serializes only the documented fields, topicNamespace only when set', () => {
    const fields = (text: string): string[] => Object.keys(JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as object);
    expect(fields(encodePoolToken(base))).toEqual(['protocolVersion', 'apiUrl', 'brokerUrl', 'poolId', 'caCert']);
    expect(fields(encodePoolToken({ ...base, topicNamespace: 'acme' }))).toEqual(['protocolVersion', 'apiUrl', 'brokerUrl', 'poolId', 'caCert', 'topicNamespace']);
    const extra = { ...base, secretNote: 'not a token field' } as PoolToken;
    expect(fields(encodePoolToken(extra))).not.toContain('secretNote');
  });

  test('refuses every JSON value that is not an object', () => {
    for (const v of [null, [], 'text', 5, true]) {
      expect(tokenError(b64(v))).toBe('token is not base64-encoded JSON: the decoded value is not a JSON object');
    }
  });

  test('names a missing, null, mistyped or empty field', () => {
    const { protocolVersion: _v, ...noVersion } = base;
    void _v;
    expect(tokenError(b64(noVersion))).toBe('token field "protocolVersion" is missing');
    expect(tokenError(b64({ ...base, protocolVersion: 1.5 }))).toBe('token field "protocolVersion" must be an integer, got 1.5');
    expect(tokenError(b64({ ...base, protocolVersion: '1' }))).toBe('token field "protocolVersion" must be an integer, got "1"');
    expect(tokenError(b64({ ...base, protocolVersion: null }))).toBe('token field "protocolVersion" must be an integer, got null');
    expect(tokenError(b64({ ...base, protocolVersion: 99 }))).toMatch(/^token protocolVersion 99 is not supported \(this build speaks /);
    expect(tokenError(b64({ ...base, apiUrl: null }))).toBe('token field "apiUrl" is missing');
    expect(tokenError(b64({ ...base, poolId: '' }))).toBe('token field "poolId" is empty');
    expect(tokenError(b64({ ...base, caCert: '' }))).toBe('token field "caCert" is empty');
    expect(tokenError(b64({ ...base, brokerUrl: 'https://backend.example:8883' }))).toBe('token field "brokerUrl" must use mqtts:, got "https://backend.example:8883"');
    expect(tokenError(b64({ ...base, poolId: 'pool/1' }))).toBe('token field "poolId" has invalid characters: "pool/1"');
    expect(tokenError(b64({ ...base, topicNamespace: 7 }))).toBe('token field "topicNamespace" must be a single topic level like "spacelift", got 7');
  });

  test('errors are PoolCredentialsError by name, for logs that print only the name', () => {
    try {
      parsePoolToken('!');
    } catch (err) {
      expect((err as Error).name).toBe('PoolCredentialsError');
      return;
    }
    throw new Error('token was accepted');
  });
});

describe('decodeSecretPrivateKey', () => {
  const rsaPem = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;

  function keyError(text: string): string {
    try {
      decodeSecretPrivateKey(text);
    } catch (err) {
      expect(err).toBeInstanceOf(PoolCredentialsError);
      expect((err as PoolCredentialsError).field).toBe('privateKey');
      return (err as Error).message;
    }
    throw new Error('key was accepted');
  }

  test('accepts base64 of a PKCS#1 or PKCS#8 PEM', () => {
    expect(decodeSecretPrivateKey(Buffer.from(rsaPem).toString('base64'))).toBe(rsaPem);
    const pkcs8 = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    expect(decodeSecretPrivateKey(Buffer.from(pkcs8).toString('base64'))).toBe(pkcs8);
  });

  test('reports the byte offset of bad base64, like the Go controller', () => {
    const good = Buffer.from(rsaPem).toString('base64');
    const broken = good.slice(0, 100) + '*' + good.slice(101);
    expect(keyError(broken)).toBe('unable to base64 decode privateKey: illegal base64 data at input byte 100');
    expect(keyError(`  ${broken}\n`)).toBe('unable to base64 decode privateKey: illegal base64 data at input byte 102');
    // The PEM pasted without base64-encoding it first.
    expect(keyError(rsaPem)).toBe('unable to base64 decode privateKey: illegal base64 data at input byte 0');
  });

  test('refuses base64 of something that is not an RSA private key', () => {
    expect(keyError(Buffer.from('hello').toString('base64'))).toBe('privateKey is not a PEM-encoded RSA private key');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    expect(keyError(Buffer.from(ec).toString('base64'))).toBe('privateKey is not a PEM-encoded RSA private key');
    const pub = generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).publicKey;
    expect(keyError(Buffer.from(pub).toString('base64'))).toBe('privateKey is not a PEM-encoded RSA private key');
  });
});
