/**
 * Credential errors in-process: each shows in the pool's CredentialsValid
 * condition and a WorkerPoolCannotRegister event naming the cause (never the
 * Secret's content), with ACTUAL POOL SIZE empty, and fixing it is enough.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENTS, SECRETS } from '../../../src/runtime/k8s-client.js';
import { createTestNamespace } from '../../setup/cluster-access.js';
import { eventually, InProcessController, poolCredentials } from './harness.js';

let c: InProcessController;

beforeAll(async () => {
  c = new InProcessController({ namespace: await createTestNamespace('rec-creds') });
  await c.start();
});
afterAll(async () => {
  c.backend.unreachable = false;
  await c?.stop();
});

async function credentialsCondition(pool: string): Promise<{ reason?: string; message?: string; status?: string } | undefined> {
  return (await c.pool(pool))?.status?.conditions?.find((cond) => cond.type === 'CredentialsValid');
}

async function eventMessages(pool: string): Promise<string[]> {
  const list = await c.admin.list(EVENTS, c.ns, { fieldSelector: `involvedObject.name=${pool},reason=WorkerPoolCannotRegister` });
  return list.items.map((e) => e.message ?? '');
}

describe('pool credentials', () => {
  it('reports a missing Secret, then registers workers once it exists', async () => {
    const creds = poolCredentials('01hcredsmissingaaaaaaaaaaa');
    await c.createPool('missing', 1, creds);
    await c.admin.delete(SECRETS, c.ns, 'missing-credentials');
    await c.scale('missing', 2);
    await eventually('SecretNotFound', async () => (await credentialsCondition('missing'))?.reason === 'SecretNotFound');
    expect((await credentialsCondition('missing'))?.message).toBe(`secret ${c.ns}/missing-credentials (spec.token.secretKeyRef) not found`);
    expect((await c.pool('missing'))?.status?.actualPoolSize).toBeUndefined();
    await eventually('the event', async () => (await eventMessages('missing')).some((m) => m.includes('missing-credentials')));

    await c.admin.create(SECRETS, c.ns, {
      metadata: { name: 'missing-credentials' },
      stringData: { token: creds.token, privateKey: Buffer.from(creds.privateKeyPem).toString('base64') },
    });
    await eventually('two workers registered', async () => (await c.pool('missing'))?.status?.actualPoolSize === 2);
    expect((await credentialsCondition('missing'))?.reason).toBe('CredentialsAccepted');
  });

  it('reports a token that is not a pool token without quoting the Secret', async () => {
    const creds = poolCredentials('01hcredsbadtokenaaaaaaaaaa');
    await c.createPool('badtoken', 1, creds);
    await eventually('registered', async () => (await c.pool('badtoken'))?.status?.actualPoolSize === 1);
    const secretText = 'sk-live-THIS-MUST-NOT-LEAK';
    await c.admin.mergePatch(SECRETS, c.ns, 'badtoken-credentials', { data: { token: Buffer.from(secretText).toString('base64') } });
    await eventually('InvalidToken', async () => (await credentialsCondition('badtoken'))?.reason === 'InvalidToken');
    const condition = await credentialsCondition('badtoken');
    expect(condition?.message).toMatch(/token/);
    expect(JSON.stringify(await c.pool('badtoken'))).not.toContain('THIS-MUST-NOT-LEAK');
    expect((await eventMessages('badtoken')).join('\n')).not.toContain('THIS-MUST-NOT-LEAK');
    expect(c.logs.lines.join('\n')).not.toContain('THIS-MUST-NOT-LEAK');
  });

  it('reports a pool the backend refuses, and one it cannot reach', async () => {
    await c.createPool('refused', 1, poolCredentials('01hcredsrefusedaaaaaaaaaaa'));
    c.backend.refused.set('01hcredsrefusedaaaaaaaaaaa', 'unknown pool key');
    await eventually('BackendRefused', async () => (await credentialsCondition('refused'))?.reason === 'BackendRefused');
    expect((await credentialsCondition('refused'))?.message).toMatch(/unknown pool key/);
    expect(await c.workers('refused')).toEqual([]);

    c.backend.refused.delete('01hcredsrefusedaaaaaaaaaaa');
    c.backend.unreachable = true;
    await c.admin.mergePatch(SECRETS, c.ns, 'refused-credentials', { metadata: { labels: { touched: 'yes' } } });
    await eventually('BackendUnreachable', async () => (await credentialsCondition('refused'))?.reason === 'BackendUnreachable');
    expect((await credentialsCondition('refused'))?.message).toMatch(/cannot reach the backend/);

    c.backend.unreachable = false;
    await eventually('registered once the backend answers', async () => (await c.pool('refused'))?.status?.actualPoolSize === 1, 60_000);
  });
});
