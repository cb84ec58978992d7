/**
 * The install's ValidatingAdmissionPolicy (issue 17): acting as the
 * controller's ServiceAccount (impersonated, as `kubectl --as` does), Pods
 * and Secrets without the managed-by label and a controller owner reference
 * to a Worker cannot be created, changed or deleted; the controller's own
 * objects can; other users are not affected.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { API_GROUP_VERSION, LABEL_MANAGED_BY, MANAGED_BY_VALUE } from '../../src/api/constants.js';
import { CONTROLLER_NAMESPACE, CONTROLLER_SA } from '../setup/controller-access.js';
import { createTestNamespace, ensureInstalled, kubectl, kubectlOk } from '../setup/cluster-access.js';
import { eventually } from './runtime-support.js';

const AS = `--as=system:serviceaccount:${CONTROLLER_NAMESPACE}:${CONTROLLER_SA}`;
/** A Worker that exists: the node's garbage collector deletes objects whose owner does not. */
const owner = { apiVersion: API_GROUP_VERSION, kind: 'Worker', name: 'w', uid: '', controller: true, blockOwnerDeletion: false };

function secret(name: string, managed: boolean, withOwner = managed): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, ...(managed ? { labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE } } : {}), ...(withOwner ? { ownerReferences: [owner] } : {}) },
    stringData: { k: 'v' },
  });
}

function pod(name: string, managed: boolean): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(managed ? { labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE }, ownerReferences: [owner] } : {}) },
    spec: { containers: [{ name: 'c', image: 'registry.example.com/x:1' }], nodeSelector: { 'kwc.test/never-scheduled': 'true' } },
  });
}

describe('the controller admission policy of dist/manifests.yaml', () => {
  let ns = '';
  beforeAll(async () => {
    await ensureInstalled();
    ns = await createTestNamespace('install-vap');
    const worker = { apiVersion: API_GROUP_VERSION, kind: 'Worker', metadata: { name: owner.name }, spec: { poolName: 'none', workerId: 'w' } };
    owner.uid = await kubectlOk(['create', '-n', ns, '-f', '-', '-o', 'jsonpath={.metadata.uid}'], { stdin: JSON.stringify(worker) });
    // The API server compiles a new policy within moments; wait until it refuses.
    await eventually(
      'the policy in force',
      async () => (await kubectl(['create', '-n', ns, AS, '-f', '-'], { stdin: secret('probe', false) })).stderr.includes('the controller may only write'),
      60_000,
    );
  });

  it('refuses, as the controller, Secrets and Pods that are not its own', async () => {
    const s = await kubectl(['create', '-n', ns, AS, '-f', '-'], { stdin: secret('plain', false) });
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/ValidatingAdmissionPolicy 'kube-workerpool-controller-managed-objects'.*denied request: the controller may only write secrets that carry the label app.kubernetes.io\/managed-by=kube-workerpool-controller and a controller owner reference to a Worker; CREATE of .*\/plain refused/);
    // The label alone is not enough.
    expect((await kubectl(['create', '-n', ns, AS, '-f', '-'], { stdin: secret('label-only', true, false) })).code).not.toBe(0);
    const p = await kubectl(['create', '-n', ns, AS, '-f', '-'], { stdin: pod('plain-pod', false) });
    expect(p.code).not.toBe(0);
    expect(p.stderr).toContain('the controller may only write pods');
  });

  it("refuses, as the controller, changing or deleting someone else's Secret", async () => {
    await kubectlOk(['create', '-n', ns, '-f', '-'], { stdin: secret('users', false) });
    const patched = await kubectl(['patch', 'secret', 'users', '-n', ns, AS, '--type=merge', '-p', '{"stringData":{"k":"stolen"}}']);
    expect(patched.code).not.toBe(0);
    expect(patched.stderr).toContain('UPDATE of');
    const deleted = await kubectl(['delete', 'secret', 'users', '-n', ns, AS]);
    expect(deleted.code).not.toBe(0);
    expect(deleted.stderr).toContain('DELETE of');
    expect(await kubectlOk(['get', 'secret', 'users', '-n', ns, '-o', 'jsonpath={.data.k}'])).toBe(Buffer.from('v').toString('base64'));
  });

  it('lets the controller write its own objects, and other users anything', async () => {
    await kubectlOk(['create', '-n', ns, AS, '-f', '-'], { stdin: secret('managed', true) });
    await kubectlOk(['patch', 'secret', 'managed', '-n', ns, AS, '--type=merge', '-p', '{"stringData":{"k":"w"}}']);
    await kubectlOk(['delete', 'secret', 'managed', '-n', ns, AS]);
    await kubectlOk(['create', '-n', ns, AS, '-f', '-'], { stdin: pod('managed-pod', true) });
    await kubectlOk(['create', '-n', ns, '-f', '-'], { stdin: pod('someone-elses-pod', false) });
  });
});
