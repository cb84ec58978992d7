/**
 * Broken pool credentials are reported where a user looks (an event, a
 * condition, an empty ACTUAL POOL SIZE), register nothing, and heal as soon
 * as the Secret is fixed, without restarting anything (issue 5).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { kubectlOk } from '../setup/cluster-access.js';
import { startE2E, waitFor, type E2E, type SecretData } from './harness.js';
import type { Pool } from '../integration/backend-harness.js';

let e2e: E2E;
let otherPool: Pool;

beforeAll(async () => {
  e2e = await startE2E('e2e-creds');
  e2e.startController();
  otherPool = await (await import('../integration/backend-harness.js')).createPool(e2e.env, 'someone-else');
});
afterAll(async () => {
  await e2e?.close();
});

function corrupt(b64: string, at: number): string {
  return `${b64.slice(0, at)}*${b64.slice(at + 1)}`;
}

const cases: [string, SecretData, string, string][] = [
  ['privateKey is not base64', (p) => ({ token: p.tokenText, privateKey: corrupt(p.privateKeyB64, 40) }), 'InvalidPrivateKey', 'unable to base64 decode privateKey: illegal base64 data at input byte 40'],
  ['privateKey is not a PEM key', (p) => ({ token: p.tokenText, privateKey: Buffer.from('not a key').toString('base64') }), 'InvalidPrivateKey', 'privateKey is not a PEM-encoded RSA private key'],
  ['token is not base64 JSON', (p) => ({ token: Buffer.from('{"oops"').toString('base64'), privateKey: p.privateKeyB64 }), 'InvalidToken', 'token is not base64-encoded JSON'],
  ['the Secret does not exist', () => null, 'SecretNotFound', '-credentials (spec.token.secretKeyRef) not found'],
  ['the Secret lacks the privateKey key', (p) => ({ token: p.tokenText }), 'SecretKeyMissing', 'has no key "privateKey"'],
  ['the backend refuses the key', (p) => ({ token: p.tokenText, privateKey: otherPool.privateKeyB64 }), 'BackendRefused', 'backend answered 401'],
];

test.each(cases)('%s: event, condition, no workers; fixing the Secret recovers', async (label, secret, reason, message) => {
  const name = `bad-${cases.findIndex((c) => c[0] === label)}`;
  const pool = await e2e.createWorkerPool(name, 1, {}, secret);

  const events = await waitFor('a WorkerPoolCannotRegister event', async () => {
    const list = await e2e.eventsFor('WorkerPool', name);
    return list.some((e) => e.reason === 'WorkerPoolCannotRegister') ? list : undefined;
  });
  // Exactly one cause is reported: no transient warning from a cache that had not seen the Secret yet.
  const warnings = events.filter((e) => e.reason === 'WorkerPoolCannotRegister');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ type: 'Warning' });
  expect(warnings[0].message).toContain(message);

  const condition = await waitFor('the CredentialsValid condition', async () =>
    (await e2e.pool(name)).status?.conditions?.find((c) => c.type === 'CredentialsValid' && c.status === 'False'));
  expect(condition.reason).toBe(reason);
  expect(condition.message).toContain(message);

  const status = (await e2e.pool(name)).status;
  expect(status?.actualPoolSize).toBeUndefined();
  expect(status?.desiredPoolSize).toBe(1);
  expect((await e2e.workers()).filter((w) => w.spec.poolName === name)).toEqual([]);
  // The printed table leaves ACTUAL POOL SIZE empty; custom columns show the empty field as <none>.
  const row = await kubectlOk(['get', 'workerpools', name, '-n', e2e.namespace, '--no-headers', '-o', 'custom-columns=DESIRED:.status.desiredPoolSize,ACTUAL:.status.actualPoolSize']);
  expect(row.trim().split(/\s+/)).toEqual(['1', '<none>']);

  await e2e.writeSecret(`${name}-credentials`, { token: pool.tokenText, privateKey: pool.privateKeyB64 });
  await waitFor('the pool to recover', async () => (await e2e.pool(name)).status?.actualPoolSize === 1, 60_000);
  expect((await e2e.pool(name)).status?.conditions?.find((c) => c.type === 'CredentialsValid')?.status).toBe('True');
  expect((await e2e.backendPool(pool.id)).workers).toHaveLength(1);
});
