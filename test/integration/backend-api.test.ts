/**
 * The backend's HTTP API: admin authentication, pool-signed worker calls
 * (wrong key, unknown pool, tampering, replay, stale timestamps) and the
 * `npm run backend` command line.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../src/backend/broker.js';
import {
  BackendClient,
  createCsr,
  decodeSecretPrivateKey,
  encodePoolToken,
  generateEcdsaKeyPair,
  generateRsaKeyPair,
  parsePoolToken,
  signRequest,
  TerminalBackendError,
  workerApiPaths,
  RetryableBackendError,
} from '../../src/protocol/index.js';
import { createPool, request, startEnv, waitFor, type Env, type Pool } from './backend-harness.js';

describe('backend API', () => {
  let env: Env;
  let pool: Pool;
  let csr: string;

  beforeAll(async () => {
    env = await startEnv('embedded');
    pool = await createPool(env, 'api');
    csr = await createCsr((await generateRsaKeyPair()).privateKeyPem);
  });
  afterAll(async () => {
    pool?.client.close();
    await env?.close();
  });

  test('admin calls need the bearer token from <data-dir>/admin-token (mode 0600)', async () => {
    const file = path.join(env.dataDir, 'admin-token');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toBe(env.backend.adminToken);
    const none = await request<{ error: string }>(env.backend, 'GET', `/api/pools/${pool.id}`);
    expect(none.status).toBe(401);
    expect(none.body.error).toMatch(/missing Authorization: Bearer/);
    const wrong = await request<{ error: string }>(env.backend, 'POST', '/api/runs', { poolId: pool.id }, 'x'.repeat(43));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatch(/not the admin token/);
    const ok = await env.admin<{ id: string; name: string; pendingRuns: number; workers: unknown[] }>('GET', `/api/pools/${pool.id}`);
    expect(ok.body).toEqual({ id: pool.id, name: 'api', pendingRuns: 0, workers: [] });
  });

  test('the pool credentials are what the Secret holds: token = base64 JSON, privateKey = base64 of the PEM', async () => {
    const token = JSON.parse(Buffer.from(pool.tokenText, 'base64').toString());
    expect(token).toMatchObject({ protocolVersion: 2, poolId: pool.id, apiUrl: env.backend.apiUrl, brokerUrl: env.backend.brokerUrl });
    expect(token.caCert).toBe(env.backend.caPem);
    expect(Buffer.from(pool.privateKeyB64, 'base64').toString()).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(pool.privateKeyB64).not.toMatch(/\s/);
  });

  test('registration with the right pool key works, and is idempotent for a caller-chosen id', async () => {
    const res = await pool.client.register(csr, '01jabcdefghjkmnpqrstvwxyz0');
    expect(res.workerId).toBe('01jabcdefghjkmnpqrstvwxyz0');
    expect(res.caPem).toBe(env.backend.caPem);
    const again = await pool.client.register(csr, '01jabcdefghjkmnpqrstvwxyz0');
    expect(again.workerId).toBe(res.workerId);
    const view = await env.admin<{ workers: Array<{ id: string }> }>('GET', `/api/pools/${pool.id}`);
    expect(view.body.workers.filter((w) => w.id === res.workerId)).toHaveLength(1);
  });

  test('registration with a wrong pool key is refused, naming the cause', async () => {
    const other = await generateRsaKeyPair();
    const client = new BackendClient({ token: pool.token, privateKeyPem: other.privateKeyPem });
    const err = await client.register(csr).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as Error).message).toMatch(/register worker: backend answered 401: request signature does not verify with the public key of pool/);
  });

  test('a token for a pool the backend does not know is refused like a wrong key: the signature is checked before the pool is looked up', async () => {
    const forged = parsePoolToken(encodePoolToken({ ...pool.token, poolId: '01JNOSUCHPOOL0000000000000' }));
    const client = new BackendClient({ token: forged, privateKeyPem: pool.privateKeyPem });
    const err = await client.register(csr).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as TerminalBackendError).status).toBe(401);
    expect((err as Error).message).toBe(
      'register worker: backend answered 401: request signature does not verify with the public key of pool 01JNOSUCHPOOL0000000000000: wrong pool private key, or the request was altered',
    );
    expect((err as Error).message).not.toMatch(/exist/);
  });

  test('a token whose CA is not the backend CA fails as terminal, naming the certificate problem', async () => {
    const fake = { ...pool.token, caCert: (await startCaOnly()).certPem };
    const client = new BackendClient({ token: fake, privateKeyPem: pool.privateKeyPem });
    const err = await client.register(csr).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as Error).message).toMatch(/certificate the token's caCert does not accept/);
  });

  test('a tampered request is refused', async () => {
    const p = workerApiPaths.register(pool.id);
    const body = Buffer.from(JSON.stringify({ csr }));
    const headers = signRequest({ method: 'POST', path: p, poolId: pool.id, body, privateKey: pool.privateKeyPem });
    const tamperedBody = Buffer.from(JSON.stringify({ csr, workerId: '01JTAMPEREDTAMPEREDTAMPERE' }));
    const res = await request<{ error: string }>(env.backend, 'POST', p, undefined, undefined, headers, tamperedBody);
    expect(res.status).toBe(401);
    expect(res.body.error).toMatch(/altered/);
    // The same signature on another endpoint.
    const res2 = await request<{ error: string }>(env.backend, 'GET', workerApiPaths.stats(pool.id), undefined, undefined, headers);
    expect(res2.status).toBe(401);
  });

  test('a replayed request is refused, also after a backend restart; a stale one too', async () => {
    const p = workerApiPaths.register(pool.id);
    const body = Buffer.from(JSON.stringify({ csr }));
    const headers = signRequest({ method: 'POST', path: p, poolId: pool.id, body, privateKey: pool.privateKeyPem });
    const first = await request<{ workerId: string }>(env.backend, 'POST', p, undefined, undefined, headers, body);
    expect(first.status).toBe(201);
    const replay = await request<{ error: string; code: string }>(env.backend, 'POST', p, undefined, undefined, headers, body);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('request nonce was already used: replayed request refused');
    await env.restartBackend();
    const replay2 = await request<{ error: string }>(env.backend, 'POST', p, undefined, undefined, headers, body);
    expect(replay2.status).toBe(401);
    expect(replay2.body.error).toMatch(/replayed request refused/);

    const stale = signRequest({ method: 'POST', path: p, poolId: pool.id, body, privateKey: pool.privateKeyPem, now: Date.now() - 10 * 60 * 1000 });
    const old = await request<{ error: string }>(env.backend, 'POST', p, undefined, undefined, stale, body);
    expect(old.status).toBe(401);
    expect(old.body.error).toMatch(/request timestamp is -6\d\d s off the backend clock/);
  });

  test('an unsigned worker call and a bad CSR get clear errors', async () => {
    const res = await request<{ error: string }>(env.backend, 'GET', workerApiPaths.stats(pool.id));
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('request is not signed: header x-wp-pool-id is missing');
    const err = await pool.client.register('not a csr').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalBackendError);
    expect((err as Error).message).toMatch(/csr is not a PEM certificate request/);
  });

  test('an unreachable backend is a retryable error', async () => {
    const gone = { ...pool.token, apiUrl: `https://127.0.0.1:${await freePort()}` };
    const client = new BackendClient({ token: gone, privateKeyPem: pool.privateKeyPem });
    const err = await client.poolStats().catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RetryableBackendError);
    expect((err as Error).message).toMatch(/cannot reach the backend.*ECONNREFUSED/);
  });
});

async function startCaOnly(): Promise<{ certPem: string }> {
  const { CertificateAuthority } = await import('../../src/backend/ca.js');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-other-ca-'));
  const ca = await CertificateAuthority.loadOrCreate(dir);
  await rm(dir, { recursive: true, force: true });
  return { certPem: ca.certPem };
}

/** `npm run backend`'s entry point on free ports with its data in `dir`, its output collected; `ready()` waits for the ready line. */
function startBackend(dir: string, args: readonly string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/backend/main.ts', '--data-dir', path.join(dir, 'data'), '--port', '0', '--broker-port', '0', ...args], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return {
    child,
    out: () => out,
    err: () => err,
    ready: () =>
      waitFor('the ready line', () => {
        if (child.exitCode !== null) throw new Error(`backend exited ${child.exitCode}: ${err}`);
        return /\n/.test(out) ? out : undefined;
      }),
  };
}

describe('npm run backend', () => {
  test('prints exactly one ready line, serves the API, and logs JSON lines without secrets', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-backend-cli-'));
    const backend = startBackend(dir, []);
    const { child } = backend;
    try {
      const line = await backend.ready();
      expect(line).toMatch(/^backend ready: api=https:\/\/127\.0\.0\.1:\d+ broker=mqtts:\/\/127\.0\.0\.1:\d+\n$/);
      const apiUrl = /api=(\S+)/.exec(line)?.[1] as string;
      const caPem = await readFile(path.join(dir, 'data', 'ca.pem'), 'utf8');
      const adminToken = (await readFile(path.join(dir, 'data', 'admin-token'), 'utf8')).trim();
      const created = await request<{ id: string; token: string; privateKey: string }>({ apiUrl, caPem }, 'POST', '/api/pools', { name: 'cli' }, adminToken);
      expect(created.status).toBe(201);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(backend.out()).toBe(line);
      const lines = backend.err().trim().split('\n');
      for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
      for (const secret of [adminToken, created.body.token, created.body.privateKey, 'BEGIN']) expect(backend.err().includes(secret)).toBe(false);
      // Protocol version 2 unless told otherwise (next test).
      expect(JSON.parse(Buffer.from(created.body.token, 'base64').toString())).toMatchObject({ protocolVersion: 2 });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('--protocol-version 1 makes it a backend of version 1 only: its tokens say 1 and it refuses ECDSA CSRs; another value is refused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wpc-backend-v1-'));
    const bad = startBackend(dir, ['--protocol-version', '3']);
    const badExit = await new Promise<number | null>((resolve) => bad.child.once('exit', (code) => resolve(code)));
    expect(badExit).toBe(2);
    expect(bad.err()).toContain('--protocol-version must be 1 or 2, got "3"');

    const { child, ready } = startBackend(dir, ['--protocol-version', '1']);
    try {
      const line = await ready();
      const apiUrl = /api=(\S+)/.exec(line)?.[1] as string;
      const caPem = await readFile(path.join(dir, 'data', 'ca.pem'), 'utf8');
      const adminToken = (await readFile(path.join(dir, 'data', 'admin-token'), 'utf8')).trim();
      const created = await request<{ id: string; token: string; privateKey: string }>({ apiUrl, caPem }, 'POST', '/api/pools', { name: 'v1' }, adminToken);
      expect(created.status).toBe(201);
      const token = parsePoolToken(created.body.token);
      expect(token.protocolVersion).toBe(1);
      const client = new BackendClient({ token, privateKeyPem: decodeSecretPrivateKey(created.body.privateKey) });
      try {
        const refused = await client.register(await createCsr((await generateEcdsaKeyPair()).privateKeyPem)).catch((e: unknown) => e as Error);
        expect(refused).toBeInstanceOf(TerminalBackendError);
        expect((refused as Error).message).toContain('csr key must be RSA of at least 2048 bits, got ECDSA P-256 (this backend speaks protocol version 1)');
        const rsa = await client.register(await createCsr((await generateRsaKeyPair()).privateKeyPem));
        expect(new X509Certificate(rsa.certificatePem).publicKey.asymmetricKeyType).toBe('rsa');
      } finally {
        client.close();
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
