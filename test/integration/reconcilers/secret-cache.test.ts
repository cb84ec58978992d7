/**
 * The controller holds in memory only the Secrets it needs (issue 17): the
 * ones its pools reference and its Workers' own. Thousands of unrelated
 * Secrets in a watched namespace never enter its cache.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKERPOOL_REF } from '../../../src/api/types.js';
import { SECRETS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

const UNRELATED = 2000;
let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-secrets') });
  for (let i = 0; i < UNRELATED; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, UNRELATED - i) }, (_, k) =>
        c.admin.create(SECRETS, c.ns, { metadata: { name: `unrelated-${i + k}` }, stringData: { password: 'x'.repeat(512) } }),
      ),
    );
  }
  await c.start();
}, 300_000);
afterAll(async () => {
  await c?.stop();
});

describe('the Secret cache', () => {
  it(`holds the pools' referenced Secrets and the Workers' own, none of ${UNRELATED} unrelated ones`, async () => {
    await c.createPool('cache', 2, poolCredentials('01hsecretcacheaaaaaaaaaaaa'));
    await eventually('two workers registered', async () => (await c.pool('cache'))?.status?.actualPoolSize === 2);
    const cache = c.running.ctx.caches.secrets;
    const workers = await c.workers('cache');
    await eventually('the Workers\' Secrets cached', () => workers.every((w) => cache.get(c.ns, w.metadata.name ?? '') !== undefined));
    expect(cache.get(c.ns, 'cache-credentials')).toBeDefined();
    expect(cache.get(c.ns, 'unrelated-0')).toBeUndefined();
    expect(cache.get(c.ns, `unrelated-${UNRELATED - 1}`)).toBeUndefined();
    // The pool's credentials Secret and one Secret per Worker: nothing else.
    expect(cache.size).toBe(3);
    expect((await c.admin.list(SECRETS, c.ns)).items.length).toBeGreaterThanOrEqual(UNRELATED + 3);
  });

  it('follows the pools: a Secret a pool starts referencing is watched, one no pool references any more is dropped', async () => {
    const creds = poolCredentials('01hsecretcachebbbbbbbbbbbb');
    await c.createPool('moving', 1, creds);
    await eventually('registered', async () => (await c.pool('moving'))?.status?.actualPoolSize === 1);
    const cache = c.running.ctx.caches.secrets;
    await c.admin.create(SECRETS, c.ns, { metadata: { name: 'moving-credentials-2' }, stringData: { token: creds.token, privateKey: Buffer.from(creds.privateKeyPem).toString('base64') } });
    const ref = { secretKeyRef: { name: 'moving-credentials-2', key: 'token' } };
    const key = { secretKeyRef: { name: 'moving-credentials-2', key: 'privateKey' } };
    await c.admin.mergePatch(WORKERPOOL_REF, c.ns, 'moving', { spec: { token: ref, privateKey: key } });
    await eventually('the new Secret cached', () => cache.get(c.ns, 'moving-credentials-2') !== undefined);
    await eventually('the old one dropped', () => cache.get(c.ns, 'moving-credentials') === undefined);
    // A change of the newly referenced Secret still reaches the pool.
    await c.admin.mergePatch(SECRETS, c.ns, 'moving-credentials-2', { data: { token: Buffer.from('bm90IGpzb24=').toString('base64') } });
    await eventually('InvalidToken', async () => (await c.pool('moving'))?.status?.conditions?.some((x) => x.type === 'CredentialsValid' && x.reason === 'InvalidToken') === true);
  });
});
