import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { mayPublish, maySubscribe } from '../../src/backend/acl.js';
import { mosquittoAcl } from '../../src/backend/mosquitto.js';
import { canonicalRequest, MAX_CLOCK_SKEW_MS, MemoryNonceStore, SIGNATURE_HEADERS, signRequest, verifySignedRequest } from '../../src/protocol/registration.js';

const gen = () => generateKeyPairSync('rsa', { modulusLength: 1024, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const pool = gen();
const other = gen();
const NOW = 1_800_000_000_000;

function verify(headers: Record<string, string>, over: { path?: string; method?: string; body?: string; now?: number; expectedPoolId?: string; nonces?: MemoryNonceStore } = {}) {
  return verifySignedRequest({
    method: over.method ?? 'POST',
    path: over.path ?? '/api/pools/P1/workers',
    headers,
    body: Buffer.from(over.body ?? '{"csr":"x"}'),
    expectedPoolId: over.expectedPoolId ?? 'P1',
    publicKeyFor: (id) => (id === 'P1' ? pool.publicKey : undefined),
    nonces: over.nonces ?? new MemoryNonceStore(),
    now: over.now ?? NOW,
  });
}

const sign = (key = pool.privateKey, now = NOW, poolId = 'P1') =>
  signRequest({ method: 'POST', path: '/api/pools/P1/workers', poolId, body: Buffer.from('{"csr":"x"}'), privateKey: key, now });

describe('signed worker requests', () => {
  test('verify with the pool key', () => {
    expect(verify(sign())).toEqual({ ok: true, poolId: 'P1' });
  });

  test('refuse a wrong key, an altered body, path or method', () => {
    const bad = /does not verify with the public key of pool P1: wrong pool private key, or the request was altered/;
    expect(verify(sign(other.privateKey))).toMatchObject({ ok: false, status: 401, reason: expect.stringMatching(bad) });
    expect(verify(sign(), { body: '{"csr":"y"}' })).toMatchObject({ ok: false, reason: expect.stringMatching(bad) });
    expect(verify(sign(), { method: 'DELETE' })).toMatchObject({ ok: false, reason: expect.stringMatching(bad) });
    expect(verify(sign(), { path: '/api/pools/P1/stats' })).toMatchObject({ ok: false, reason: expect.stringMatching(bad) });
  });

  test('refuse a nonce or a timestamp altered after signing', () => {
    // Both are in the signed text: a replay with a fresh nonce, or a stale
    // request with a fresh timestamp, must not verify.
    const bad = /does not verify with the public key of pool P1: wrong pool private key, or the request was altered/;
    const h = sign();
    expect(verify({ ...h, [SIGNATURE_HEADERS.nonce]: 'f'.repeat(32) })).toMatchObject({ ok: false, status: 401, reason: expect.stringMatching(bad) });
    expect(verify({ ...h, [SIGNATURE_HEADERS.timestamp]: String(NOW + 1) })).toMatchObject({ ok: false, status: 401, reason: expect.stringMatching(bad) });
    expect(verify(h)).toEqual({ ok: true, poolId: 'P1' });
  });

  test('sign the documented canonical text: scheme, method, path, pool, timestamp, nonce, body hash', () => {
    const fields = { method: 'post', path: '/api/pools/P1/workers', poolId: 'P1', timestamp: '1800000000000', nonce: 'n0nce' };
    const bodyHash = createHash('sha256').update('{"csr":"x"}').digest('hex');
    const expected = `WPC1-RSA-SHA256\nPOST\n/api/pools/P1/workers\nP1\n1800000000000\nn0nce\n${bodyHash}`;
    expect(canonicalRequest({ ...fields, body: Buffer.from('{"csr":"x"}') })).toBe(expected);
    expect(canonicalRequest({ ...fields, body: { sha256: bodyHash } })).toBe(expected);
  });

  test('refuse replays and stale or future timestamps', () => {
    const nonces = new MemoryNonceStore();
    const h = sign();
    expect(verify(h, { nonces }).ok).toBe(true);
    expect(verify(h, { nonces })).toEqual({ ok: false, status: 401, reason: 'request nonce was already used: replayed request refused' });
    expect(verify(h, { nonces, now: NOW + MAX_CLOCK_SKEW_MS + 1000 })).toMatchObject({ ok: false, reason: expect.stringMatching(/^request timestamp is -301 s off/) });
    expect(verify(sign(pool.privateKey, NOW + 400_000))).toMatchObject({ ok: false, reason: expect.stringMatching(/^request timestamp is 400 s off/) });
  });

  test('refuse unknown pools, mismatched pool ids and missing headers', () => {
    expect(verify(sign(pool.privateKey, NOW, 'P2'), { expectedPoolId: 'P2' })).toEqual({
      ok: false,
      status: 401,
      reason: 'request signature does not verify with the public key of pool P2: wrong pool private key, or the request was altered',
    });
    expect(verify(sign(pool.privateKey, NOW, 'P2'))).toMatchObject({ ok: false, reason: expect.stringMatching(/does not match the pool in the path/) });
    const { ['x-wp-signature']: _s, ...unsigned } = sign();
    void _s;
    expect(verify(unsigned)).toEqual({ ok: false, status: 401, reason: 'request is not signed: header x-wp-signature is missing' });
  });
});

describe('broker ACL', () => {
  const w = { kind: 'worker', workerId: 'W1', poolId: 'P1' } as const;
  test('confines a worker to its own two topics', () => {
    expect(maySubscribe(w, 'spacelift/readonly/P1/W1')).toBe(true);
    for (const t of ['spacelift/readonly/P1/W2', 'spacelift/readonly/P1/+', 'spacelift/readonly/+/W1', 'spacelift/#', '#', 'spacelift/writeonly/P1/W1']) expect(maySubscribe(w, t)).toBe(false);
    expect(mayPublish(w, 'spacelift/writeonly/P1/W1')).toBe(true);
    for (const t of ['spacelift/writeonly/P1/W2', 'spacelift/writeonly/P2/W1', 'spacelift/readonly/P1/W1']) expect(mayPublish(w, t)).toBe(false);
  });
  test('lets the backend read writeonly and write readonly topics', () => {
    const b = { kind: 'backend' } as const;
    expect(maySubscribe(b, 'spacelift/writeonly/+/+')).toBe(true);
    expect(mayPublish(b, 'spacelift/readonly/P1/W1')).toBe(true);
    expect(mayPublish(b, 'spacelift/writeonly/P1/W1')).toBe(false);
  });
  test('the mosquitto ACL file states the same rules', () => {
    const acl = mosquittoAcl();
    expect(acl).toContain('pattern read spacelift/readonly/+/%u\n');
    expect(acl).toContain('pattern write spacelift/writeonly/+/%u\n');
    expect(acl).toMatch(/user backend\ntopic read spacelift\/writeonly\/#\ntopic write spacelift\/readonly\/#/);
  });
});
