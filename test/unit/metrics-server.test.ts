import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bearerToken,
  CachingAuthorizer,
  readCertificateDir,
  selfSignedCertificate,
  startMetricsServer,
  tokenKey,
  type MetricsServer,
  type TokenAuthApi,
  type UserInfo,
} from '../../src/controller/observability/metrics-server.js';
import { Logger } from '../../src/runtime/log.js';

/** A fake API server: tokens "alice" (allowed), "bob" (not allowed); anything else does not authenticate. */
function fakeApi(): TokenAuthApi & { calls: string[]; fail: boolean } {
  const api = {
    calls: [] as string[],
    fail: false,
    async authenticate(token: string): Promise<UserInfo | undefined> {
      api.calls.push(`tokenreview`);
      if (api.fail) throw new Error('apiserver unreachable');
      return token === 'alice' || token === 'bob' ? { username: token, groups: ['system:authenticated'] } : undefined;
    },
    async authorize(user: UserInfo, verb: string, path: string): Promise<boolean> {
      api.calls.push(`sar ${user.username} ${verb} ${path}`);
      return user.username === 'alice';
    },
  };
  return api;
}

describe('bearerToken', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['Bearer', undefined],
    ['Basic YTpi', undefined],
    ['Bearer abc.def', 'abc.def'],
    ['bearer   abc ', 'abc'],
    ['Bearer a b', undefined],
  ])('%j -> %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe('CachingAuthorizer', () => {
  it('reviews a token once per TTL, asking for get on /metrics', async () => {
    const api = fakeApi();
    let now = 0;
    const auth = new CachingAuthorizer(api, { ttlMs: 30_000, now: () => now });
    expect(await auth.check('alice')).toEqual({ result: 'allowed', user: 'alice' });
    expect(await auth.check('alice')).toEqual({ result: 'allowed', user: 'alice' });
    expect(api.calls).toEqual(['tokenreview', 'sar alice get /metrics']);
    now = 30_000;
    await auth.check('alice');
    expect(api.calls).toHaveLength(4);
  });

  it('tells unauthenticated from forbidden, and does not ask for access without a user', async () => {
    const api = fakeApi();
    const auth = new CachingAuthorizer(api);
    expect(await auth.check('bob')).toEqual({ result: 'forbidden', user: 'bob' });
    expect(await auth.check('mallory')).toEqual({ result: 'unauthenticated' });
    expect(api.calls).toEqual(['tokenreview', 'sar bob get /metrics', 'tokenreview']);
  });

  it('shares one review among concurrent requests with the same token', async () => {
    const api = fakeApi();
    const auth = new CachingAuthorizer(api);
    await Promise.all([auth.check('alice'), auth.check('alice'), auth.check('alice')]);
    expect(api.calls).toHaveLength(2);
  });

  it('does not remember a failed review', async () => {
    const api = fakeApi();
    const auth = new CachingAuthorizer(api);
    api.fail = true;
    await expect(auth.check('alice')).rejects.toThrow('apiserver unreachable');
    api.fail = false;
    expect(await auth.check('alice')).toEqual({ result: 'allowed', user: 'alice' });
  });

  it('keeps at most maxEntries tokens, keyed by hash', async () => {
    const auth = new CachingAuthorizer(fakeApi(), { maxEntries: 1 });
    for (const t of ['bob', 'alice']) await auth.check(t);
    expect(auth.size).toBe(1);
    expect(tokenKey('alice')).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenKey('alice')).not.toContain('alice');
  });

  it('refuses a token that failed without asking again for a while, apart from the good answers', async () => {
    const api = fakeApi();
    let now = 0;
    const auth = new CachingAuthorizer(api, { failedTtlMs: 10_000, maxEntries: 8, now: () => now });
    await auth.check('alice');
    for (let i = 0; i < 3; i++) expect(await auth.check('mallory')).toEqual({ result: 'unauthenticated' });
    expect(api.calls.filter((c) => c === 'tokenreview')).toHaveLength(2);
    // A flood of distinct bogus tokens evicts no good answer.
    for (let i = 0; i < 100; i++) await auth.check(`bogus-${i}`);
    const before = api.calls.length;
    expect(await auth.check('alice')).toEqual({ result: 'allowed', user: 'alice' });
    expect(api.calls).toHaveLength(before);
    now = 10_000;
    await auth.check('mallory');
    expect(api.calls).toHaveLength(before + 1);
    // Tokens too long to be real cost no review.
    expect(await auth.check('x'.repeat(10_000))).toEqual({ result: 'unauthenticated' });
    expect(api.calls).toHaveLength(before + 1);
  });

  it('caps the reviews in flight: more distinct tokens at once are refused without a review', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let reviews = 0;
    const slow: TokenAuthApi = {
      async authenticate() {
        reviews++;
        await gate;
        return undefined;
      },
      async authorize() {
        return false;
      },
    };
    const auth = new CachingAuthorizer(slow, { maxConcurrentReviews: 4 });
    const checks = Array.from({ length: 50 }, (_, i) => auth.check(`bogus-${i}`));
    // The first four are admitted and wait on the API; the other 46 are refused at once.
    const refused = await Promise.allSettled(checks.slice(4));
    expect(reviews).toBe(4);
    expect(refused.filter((r) => r.status === 'rejected' && String(r.reason).includes('token reviews are in flight'))).toHaveLength(46);
    release();
    expect(await Promise.all(checks.slice(0, 4))).toEqual(Array(4).fill({ result: 'unauthenticated' }));
    // With the reviews done, new tokens are reviewed again.
    expect(await auth.check('bogus-new')).toEqual({ result: 'unauthenticated' });
    expect(reviews).toBe(5);
  });
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  peerCert?: string;
}

function get(port: number, options: { tls: boolean; path?: string; token?: string; method?: string }): Promise<Answer> {
  const request = options.tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/metrics',
        method: options.method ?? 'GET',
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const socket = res.socket as { getPeerCertificate?: () => { raw?: Buffer } };
          const raw = socket.getPeerCertificate?.().raw;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers, peerCert: raw === undefined ? undefined : new X509Certificate(raw).subject });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const metrics = { metrics: async () => 'up 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' };
let servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

describe('startMetricsServer', () => {
  it('secure: 401 without or with a bad token, 403 when not allowed, 200 when allowed; self-signed by default', async () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'debug', sink: { write: (l: string) => lines.push(l) } });
    const dir = mkdtempSync(join(tmpdir(), 'kwc-metrics-empty-'));
    const s = await startMetricsServer({ address: { host: '127.0.0.1', port: 0 }, metrics, log, secure: { certDir: dir, authorizer: new CachingAuthorizer(fakeApi()) } });
    servers.push(s);
    expect(s.certificate?.source).toBe('self-signed');
    const none = await get(s.port, { tls: true });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect((await get(s.port, { tls: true, token: 'mallory' })).status).toBe(401);
    expect((await get(s.port, { tls: true, token: 'bob' })).status).toBe(403);
    const ok = await get(s.port, { tls: true, token: 'alice' });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('up 1\n');
    expect(ok.headers['content-type']).toContain('version=0.0.4');
    expect(ok.peerCert).toContain('kube-workerpool-controller-metrics');
    expect((await get(s.port, { tls: true, token: 'alice', path: '/debug' })).status).toBe(404);
    expect((await get(s.port, { tls: true, token: 'alice', method: 'POST' })).status).toBe(405);
    // Plain HTTP is not spoken on the secure port.
    await expect(get(s.port, { tls: false })).rejects.toThrow();
    expect(lines.join('')).not.toMatch(/alice|mallory/);
  });

  it('plain: HTTP without authentication', async () => {
    const s = await startMetricsServer({ address: { host: '127.0.0.1', port: 0 }, metrics });
    servers.push(s);
    const ok = await get(s.port, { tls: false });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('up 1\n');
  });

  it('an API server that cannot be reached answers 500, not 200', async () => {
    const api = fakeApi();
    api.fail = true;
    const s = await startMetricsServer({ address: { host: '127.0.0.1', port: 0 }, metrics, secure: { certDir: '/nonexistent', authorizer: new CachingAuthorizer(api) } });
    servers.push(s);
    expect((await get(s.port, { tls: true, token: 'alice' })).status).toBe(500);
  });

  it('serves the mounted tls.crt/tls.key and picks up a new pair', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-metrics-certs-'));
    const first = await selfSignedCertificate();
    writeFileSync(join(dir, 'tls.crt'), first.certPem);
    writeFileSync(join(dir, 'tls.key'), first.keyPem);
    const s = await startMetricsServer({ address: { host: '127.0.0.1', port: 0 }, metrics, secure: { certDir: dir, authorizer: new CachingAuthorizer(fakeApi()), reloadIntervalMs: 50 } });
    servers.push(s);
    expect(s.certificate?.source).toBe(dir);
    const serial = (pem: string): string => new X509Certificate(pem).serialNumber;
    const served = async (): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port: s.port, path: '/metrics', rejectUnauthorized: false, agent: false }, (res) => {
          const raw = (res.socket as unknown as { getPeerCertificate(): { serialNumber: string } }).getPeerCertificate().serialNumber;
          res.resume();
          resolve(raw);
        });
        req.on('error', reject);
        req.end();
      });
    expect((await served()).toUpperCase()).toBe(serial(first.certPem).toUpperCase());
    const second = await selfSignedCertificate();
    writeFileSync(join(dir, 'tls.key'), second.keyPem);
    writeFileSync(join(dir, 'tls.crt'), second.certPem);
    const deadline = Date.now() + 10_000;
    while ((await served()).toUpperCase() !== serial(second.certPem).toUpperCase()) {
      if (Date.now() > deadline) throw new Error('the new certificate was not served');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('refuses a cert dir with only one of the two files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-metrics-half-'));
    writeFileSync(join(dir, 'tls.crt'), 'x');
    await expect(readCertificateDir(dir)).rejects.toThrow('holds tls.crt but not tls.key');
  });
});
