import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { mayPublish, maySubscribe } from '../../src/backend/acl.js';
import { mosquittoAcl } from '../../src/backend/mosquitto.js';
import { canonicalRequest, MAX_CLOCK_SKEW_MS, MemoryNonceStore, SIGNATURE_HEADERS, signRequest, verifySignedRequest, workerApiPaths } from '../../src/protocol/registration.js';

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

describe('signed worker requests, at their edges', () => {
  const bad = (header: string) => ({ ok: false, status: 401, reason: `request is not signed: header ${header} is missing` });

  test('names each missing or empty required header', () => {
    for (const name of [SIGNATURE_HEADERS.poolId, SIGNATURE_HEADERS.timestamp, SIGNATURE_HEADERS.nonce, SIGNATURE_HEADERS.signature]) {
      const { [name]: _gone, ...rest } = sign();
      void _gone;
      expect(verify(rest)).toEqual(bad(name));
      expect(verify({ ...sign(), [name]: '' })).toEqual(bad(name));
    }
    // The body hash is optional: older clients do not send it.
    const { [SIGNATURE_HEADERS.contentSha256]: _hash, ...noHash } = sign();
    void _hash;
    expect(verify(noHash)).toEqual({ ok: true, poolId: 'P1' });
  });

  test('a header given twice counts by its first value', () => {
    const h = sign();
    const twice = { ...h, [SIGNATURE_HEADERS.nonce]: [h[SIGNATURE_HEADERS.nonce] as string, 'g'.repeat(32)] };
    expect(verifySignedRequest({ method: 'POST', path: '/api/pools/P1/workers', headers: twice, body: Buffer.from('{"csr":"x"}'), expectedPoolId: 'P1', publicKeyFor: () => pool.publicKey, nonces: new MemoryNonceStore(), now: NOW })).toEqual({ ok: true, poolId: 'P1' });
  });

  test('checks the signature against the claimed body hash before the body is read', () => {
    const h = sign();
    const claimed = h[SIGNATURE_HEADERS.contentSha256] as string;
    expect(claimed).toBe(createHash('sha256').update('{"csr":"x"}').digest('hex'));
    const check = (sha256: string) =>
      verifySignedRequest({ method: 'POST', path: '/api/pools/P1/workers', headers: h, body: { sha256 }, expectedPoolId: 'P1', publicKeyFor: () => pool.publicKey, nonces: new MemoryNonceStore(), now: NOW });
    expect(check(claimed)).toEqual({ ok: true, poolId: 'P1' });
    const notHex = { ok: false, status: 401, reason: 'header x-wp-content-sha256 must be the lowercase hex SHA-256 of the body' };
    expect(check(claimed.toUpperCase())).toEqual(notHex);
    expect(check(claimed.slice(1))).toEqual(notHex);
    expect(check(`${claimed}0`)).toEqual(notHex);
    expect(check(createHash('sha256').update('other').digest('hex'))).toMatchObject({ ok: false, reason: expect.stringMatching(/does not verify/) });
  });

  test('names a malformed timestamp or nonce', () => {
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.timestamp]: 'yesterday' })).toEqual({ ok: false, status: 401, reason: 'header x-wp-timestamp must be milliseconds since the epoch, got "yesterday"' });
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.timestamp]: `${NOW}x` })).toMatchObject({ ok: false, reason: expect.stringMatching(/^header x-wp-timestamp must be milliseconds/) });
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.timestamp]: '1'.repeat(17) })).toMatchObject({ ok: false, reason: expect.stringMatching(/^header x-wp-timestamp must be milliseconds/) });
    const badNonce = { ok: false, status: 401, reason: 'header x-wp-nonce must be 16-128 characters of [A-Za-z0-9_-]' };
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.nonce]: 'a'.repeat(15) })).toEqual(badNonce);
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.nonce]: 'a'.repeat(129) })).toEqual(badNonce);
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.nonce]: `${'a'.repeat(20)}!` })).toEqual(badNonce);
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.nonce]: `!${'a'.repeat(20)}` })).toEqual(badNonce);
    // A nonce of any allowed length and alphabet is accepted when signed.
    for (const nonce of ['a'.repeat(16), `${'Az09_-'.repeat(21)}ab`]) {
      const h = signRequest({ method: 'POST', path: '/api/pools/P1/workers', poolId: 'P1', body: Buffer.from('{"csr":"x"}'), privateKey: pool.privateKey, now: NOW, nonce });
      expect(verify(h)).toEqual({ ok: true, poolId: 'P1' });
    }
  });

  test('quotes at most 40 characters of a malformed timestamp', () => {
    const long = `${'y'.repeat(40)}${'z'.repeat(60)}`;
    expect(verify({ ...sign(), [SIGNATURE_HEADERS.timestamp]: long })).toEqual({
      ok: false,
      status: 401,
      reason: `header x-wp-timestamp must be milliseconds since the epoch, got "${'y'.repeat(40)}"`,
    });
  });

  test('a pool public key that does not parse refuses the request, it does not throw', () => {
    const r = verifySignedRequest({ method: 'POST', path: '/api/pools/P1/workers', headers: sign(), body: Buffer.from('{"csr":"x"}'), expectedPoolId: 'P1', publicKeyFor: () => '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n', nonces: new MemoryNonceStore(), now: NOW });
    expect(r).toEqual({ ok: false, status: 401, reason: 'request signature does not verify with the public key of pool P1: wrong pool private key, or the request was altered' });
  });

  test('verifies with a KeyObject as with the PEM', () => {
    const r = verifySignedRequest({ method: 'POST', path: '/api/pools/P1/workers', headers: sign(), body: Buffer.from('{"csr":"x"}'), expectedPoolId: 'P1', publicKeyFor: () => createPublicKey(pool.publicKey), nonces: new MemoryNonceStore(), now: NOW });
    expect(r).toEqual({ ok: true, poolId: 'P1' });
  });

  test('accepts a clock off by exactly the allowed skew, either way, and not a millisecond more', () => {
    expect(verify(sign(pool.privateKey, NOW + MAX_CLOCK_SKEW_MS))).toEqual({ ok: true, poolId: 'P1' });
    expect(verify(sign(pool.privateKey, NOW - MAX_CLOCK_SKEW_MS))).toEqual({ ok: true, poolId: 'P1' });
    expect(verify(sign(pool.privateKey, NOW + MAX_CLOCK_SKEW_MS + 1))).toEqual({
      ok: false,
      status: 401,
      reason: 'request timestamp is 300 s off the backend clock (allowed ±300 s): check the clocks, or this is a replayed request',
    });
    expect(verify(sign(pool.privateKey, NOW - MAX_CLOCK_SKEW_MS - 1))).toMatchObject({ ok: false, reason: expect.stringMatching(/^request timestamp is -300 s off the backend clock \(allowed ±300 s\)/) });
  });

  test('refuses a replay for as long as its timestamp is accepted', () => {
    const nonces = new MemoryNonceStore();
    const h = sign();
    expect(verify(h, { nonces })).toEqual({ ok: true, poolId: 'P1' });
    // At the last instant the timestamp still passes, the nonce must still be remembered.
    expect(verify(h, { nonces, now: NOW + MAX_CLOCK_SKEW_MS })).toEqual({ ok: false, status: 401, reason: 'request nonce was already used: replayed request refused' });
  });
});

describe('MemoryNonceStore', () => {
  test('accepts a nonce once per pool until it expires', () => {
    const s = new MemoryNonceStore();
    expect(s.remember('P1', 'n1', 100, 0)).toBe(true);
    expect(s.remember('P1', 'n1', 100, 99)).toBe(false);
    expect(s.remember('P1', 'n2', 100, 0)).toBe(true);
    expect(s.remember('P2', 'n1', 100, 0)).toBe(true);
    // Expired at its expiry time: accepted again, and remembered anew.
    expect(s.remember('P1', 'n1', 200, 100)).toBe(true);
    expect(s.remember('P1', 'n1', 200, 150)).toBe(false);
  });

  test('stays bounded: over 10 000 nonces, the expired ones are dropped and the live ones kept', () => {
    const s = new MemoryNonceStore();
    for (let i = 0; i < 10_001; i++) s.remember('P1', `old${i}`, 100, 0);
    for (let i = 0; i < 5; i++) s.remember('P1', `live${i}`, 1_000, 0);
    expect(s.size).toBe(10_006);
    // At time 100 the first 10 001 have expired (expiry is inclusive); the live ones are not touched.
    expect(s.remember('P1', 'new', 1_000, 100)).toBe(true);
    expect(s.size).toBe(6);
    expect(s.remember('P1', 'live0', 1_000, 100)).toBe(false);
  });

  test('does not prune while at or under 10 000', () => {
    const s = new MemoryNonceStore();
    for (let i = 0; i < 10_000; i++) s.remember('P1', `old${i}`, 100, 0);
    expect(s.remember('P1', 'new', 1_000, 500)).toBe(true);
    expect(s.size).toBe(10_001);
  });
});

describe('worker API paths', () => {
  test('are the documented paths, each id escaped', () => {
    expect(workerApiPaths.register('P1')).toBe('/api/pools/P1/workers');
    expect(workerApiPaths.deregister('P1', 'W1')).toBe('/api/pools/P1/workers/W1');
    expect(workerApiPaths.drain('P1', 'W1')).toBe('/api/pools/P1/workers/W1/drain');
    expect(workerApiPaths.undrain('P1', 'W1')).toBe('/api/pools/P1/workers/W1/undrain');
    expect(workerApiPaths.stats('P1')).toBe('/api/pools/P1/stats');
    expect(workerApiPaths.runScript('P1', 'R1')).toBe('/api/pools/P1/runs/R1/script');
    expect(workerApiPaths.runLog('P1', 'R1')).toBe('/api/pools/P1/runs/R1/log');
    expect(workerApiPaths.runLogAppend('P1', 'R1', 4096)).toBe('/api/pools/P1/runs/R1/log/4096');
    expect(workerApiPaths.runLogComplete('P1', 'R1')).toBe('/api/pools/P1/runs/R1/log/complete');
    expect(workerApiPaths.deregister('a/b', 'c?d')).toBe('/api/pools/a%2Fb/workers/c%3Fd');
    expect(workerApiPaths.runLogAppend('a/b', 'r#1', 0)).toBe('/api/pools/a%2Fb/runs/r%231/log/0');
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
