/**
 * The control plane the cluster tests run against behaves like a real
 * cluster's API in the ways the project relies on: certificates, RBAC, and
 * service-account tokens.
 */
import { AuthenticationV1Api, CoreV1Api, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { describe, expect, inject, it } from 'vitest';
import { controlPlaneVersions } from '../../src/cluster/binaries.js';
import { createTestNamespace, kubectl, skipWithout, testKubeConfig, testNode } from '../setup/cluster-access.js';

function asToken(kc: KubeConfig, token: string): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'token', token }],
    contexts: [{ name: 'token', cluster: cluster.name, user: 'token' }],
    currentContext: 'token',
  });
  return out;
}

describe('test control plane', () => {
  it.skipIf(skipWithout('the local test cluster (KWC_TEST_KUBECONFIG names another)', !inject('externalCluster')))('runs the pinned Kubernetes version, and kubectl matches it', async () => {
    const version = await testKubeConfig().makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe(controlPlaneVersions().kubernetes);
    const client = await kubectl(['version', '--client', '-o', 'json']);
    expect(client.code).toBe(0);
    expect(JSON.parse(client.stdout)).toMatchObject({ clientVersion: { gitVersion: controlPlaneVersions().kubernetes } });
  });

  it('gives kubectl a working admin kubeconfig', async () => {
    const result = await kubectl(['auth', 'can-i', '*', '*', '--all-namespaces']);
    expect(result.stdout.trim()).toBe('yes');
  });

  it('issues service-account tokens that authenticate, and RBAC that denies them by default', async () => {
    const namespace = await createTestNamespace('harness');
    const kc = testKubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'nobody' } } });
    const request = await core.createNamespacedServiceAccountToken({
      namespace,
      name: 'nobody',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = request.status?.token ?? '';
    expect(token).not.toBe('');

    const asNobody = asToken(kc, token);
    const review = await asNobody.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${namespace}:nobody`);

    await expect(asNobody.makeApiClient(CoreV1Api).listNamespacedPod({ namespace })).rejects.toMatchObject({ code: 403 });
  });

  // Without a node there is no controller manager; with one, cluster-node.test.ts checks that it makes the ServiceAccounts.
  it.skipIf(testNode() !== null)('without a node: accepts pods in a new namespace although no controller creates its default ServiceAccount', async () => {
    const namespace = await createTestNamespace('harness-pod');
    const core = testKubeConfig().makeApiClient(CoreV1Api);
    const pod = await core.createNamespacedPod({
      namespace,
      body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
    });
    expect(pod.metadata?.uid).toBeTruthy();
  });
});
