/**
 * What the installed RBAC lets the controller's ServiceAccount do, asked of
 * the API server itself (SubjectAccessReview, as `kubectl auth can-i --as`
 * does). The tables are written out by hand rather than derived from
 * src/controller/permissions.ts, so a wrong permissions list fails here.
 */
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCheck, resourceAttributes, serviceAccountMay, type Check } from '../setup/access-review.js';
import { CONTROLLER, CONTROLLER_NAMESPACE, CONTROLLER_SA, W, mustAllowInWatchedNamespaces } from '../setup/controller-access.js';
import { createTestNamespace, ensureInstalled, kubectl, testKubeConfig } from '../setup/cluster-access.js';

/** Leader election and the metrics endpoint's authentication. */
const mustAllowElsewhere: Check[] = [
  ['get', 'leases', { group: 'coordination.k8s.io', namespace: CONTROLLER_NAMESPACE }],
  ['create', 'leases', { group: 'coordination.k8s.io', namespace: CONTROLLER_NAMESPACE }],
  ['update', 'leases', { group: 'coordination.k8s.io', namespace: CONTROLLER_NAMESPACE }],
  ['create', 'tokenreviews', { group: 'authentication.k8s.io', namespace: '' }],
  ['create', 'subjectaccessreviews', { group: 'authorization.k8s.io', namespace: '' }],
];

/** What a compromised controller must still not be able to do. */
const mustDeny: Check[] = [
  ['delete', 'nodes', { namespace: '' }],
  ['create', 'clusterroles', { group: 'rbac.authorization.k8s.io', namespace: '' }],
  ['escalate', 'clusterroles', { group: 'rbac.authorization.k8s.io', namespace: '' }],
  ['escalate', 'roles', { group: 'rbac.authorization.k8s.io' }],
  ['bind', 'clusterroles', { group: 'rbac.authorization.k8s.io', namespace: '' }],
  ['create', 'rolebindings', { group: 'rbac.authorization.k8s.io' }],
  ['create', 'pods', { subresource: 'exec' }],
  ['create', 'pods', { subresource: 'attach' }],
  ['impersonate', 'serviceaccounts'],
  ['create', 'serviceaccounts', { subresource: 'token' }],
  ['create', 'customresourcedefinitions', { group: 'apiextensions.k8s.io', namespace: '' }],
  ['delete', 'namespaces', { namespace: '' }],
  ['create', 'deployments', { group: 'apps' }],
  ['update', 'workerpools', W],
  ['delete', 'workerpools', W],
  ['update', 'leases', { group: 'coordination.k8s.io', namespace: 'kube-system' }],
  ['create', 'mutatingwebhookconfigurations', { group: 'admissionregistration.k8s.io', namespace: '' }],
];

describe('the controller ServiceAccount of dist/manifests.yaml', () => {
  let namespace = '';
  beforeAll(async () => {
    await ensureInstalled();
    namespace = await createTestNamespace('install-rbac');
  });

  const may = (check: Check): Promise<boolean> =>
    serviceAccountMay(testKubeConfig(), CONTROLLER, { resource: resourceAttributes(check, namespace) });

  it.each(mustAllowInWatchedNamespaces.map((check) => [describeCheck(check), check] as const))('may %s in any namespace', async (_, check) => {
    expect(await may(check)).toBe(true);
  });

  it.each(mustAllowElsewhere.map((check) => [describeCheck(check), check] as const))('may %s', async (_, check) => {
    expect(await may(check)).toBe(true);
  });

  it.each(mustDeny.map((check) => [describeCheck(check), check] as const))('may not %s', async (_, check) => {
    expect(await may(check)).toBe(false);
  });

  it('answers kubectl auth can-i --as the same way', async () => {
    const as = `--as=system:serviceaccount:${CONTROLLER_NAMESPACE}:${CONTROLLER_SA}`;
    const allowed = await kubectl(['auth', 'can-i', 'create', 'pods', '-n', namespace, as]);
    expect(allowed.stdout.trim()).toBe('yes');
    const denied = await kubectl(['auth', 'can-i', 'delete', 'nodes', as]);
    expect(denied.stdout.trim()).toBe('no');
  });
});

describe('the metrics reader ClusterRole', () => {
  let namespace = '';
  const bindingName = `metrics-reader-test-${Date.now().toString(36)}`;
  beforeAll(async () => {
    await ensureInstalled();
    namespace = await createTestNamespace('install-metrics');
    const kc = testKubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'prometheus' } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'stranger' } } });
    await kc.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: bindingName },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kube-workerpool-controller-metrics-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'prometheus', namespace }],
      },
    });
  });
  afterAll(async () => {
    // Cluster-scoped, so not removed with the test namespace.
    await testKubeConfig().makeApiClient(RbacAuthorizationV1Api).deleteClusterRoleBinding({ name: bindingName }).catch(() => undefined);
  });

  const mayGetMetrics = (name: string): Promise<boolean> =>
    serviceAccountMay(testKubeConfig(), { namespace, name }, { nonResource: { verb: 'get', path: '/metrics' } });

  it('lets a ServiceAccount bound to it get /metrics', async () => {
    expect(await mayGetMetrics('prometheus')).toBe(true);
  });

  it('does not let a ServiceAccount without it get /metrics', async () => {
    expect(await mayGetMetrics('stranger')).toBe(false);
  });
});
