/**
 * The shared test cluster's node behaves like a real cluster's (issue 14):
 * the kubelet has its own identity and the API server its own towards it,
 * the controller manager does its jobs, and pod traffic stays on the machine.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSysctl } from '../../src/cluster/node-host.js';
import { KubeClient, PODS, SECRETS } from '../../src/runtime/k8s-client.js';
import { createTestNamespace, kubectl, kubectlOk, skipWithout, testKubeConfig, testNode } from '../setup/cluster-access.js';
import { waitFor } from './backend-harness.js';

const node = testNode();

function commandLines(): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        return '';
      }
    });
}

function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(skipWithout('the node', node !== null))('the node', () => {
  it('is Ready and schedulable, on its bridge address', async () => {
    const n = JSON.parse(await kubectlOk(['get', 'node', node?.name ?? '', '-o', 'json'])) as {
      spec: { taints?: unknown[]; unschedulable?: boolean };
      status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[] };
    };
    expect(n.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(n.spec.taints ?? []).toEqual([]);
    expect(n.status.addresses).toContainEqual({ type: 'InternalIP', address: node?.address });
  });

  it('runs a kubelet that authenticates as system:node:<name> in system:nodes, with a certificate from the cluster CA', () => {
    const nodeDir = join(node?.clusterDir ?? '', 'node');
    const kubeconfig = join(nodeDir, 'kubelet.kubeconfig');
    expect(commandLines().some((c) => c.includes(' --kubeconfig=' + kubeconfig) && c.includes('kubelet'))).toBe(true);
    const config = JSON.parse(readFileSync(kubeconfig, 'utf8')) as { users: { user: { 'client-certificate-data': string } }[]; clusters: { cluster: { 'certificate-authority-data': string } }[] };
    const cert = new X509Certificate(Buffer.from(config.users[0]?.user['client-certificate-data'] ?? '', 'base64'));
    const ca = new X509Certificate(Buffer.from(config.clusters[0]?.cluster['certificate-authority-data'] ?? '', 'base64'));
    expect(cert.subject).toBe(`CN=system:node:${node?.name ?? ''}\nO=system:nodes`);
    expect(cert.verify(ca.publicKey)).toBe(true);
  });

  it('is held to what the Node authorizer and NodeRestriction allow a kubelet', async () => {
    const asNode = ['--as', `system:node:${node?.name ?? ''}`, '--as-group', 'system:nodes'];
    // Node authorizer: a kubelet reads only the Secrets of Pods bound to it.
    const secrets = await kubectl([...asNode, 'get', 'secrets', '-n', 'default']);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toMatch(/forbidden/i);
    // NodeRestriction: no node-restriction labels on its own Node.
    const label = await kubectl([...asNode, 'label', 'node', node?.name ?? '', 'node-restriction.kubernetes.io/test=x']);
    expect(label.code).not.toBe(0);
    expect(label.stderr).toMatch(/is not allowed to modify labels|forbidden/i);
    // What a kubelet needs, it may.
    expect((await kubectl([...asNode, 'get', 'node', node?.name ?? ''])).code).toBe(0);
  });

  it('refuses anonymous requests to the kubelet, which the API server reaches with its own certificate (kubectl logs and exec)', async () => {
    const port = await kubectlOk(['get', 'node', node?.name ?? '', '-o', 'jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}']);
    expect(await status(`https://${node?.address ?? ''}:${port}/pods`)).toBe(401);
    const namespace = await createTestNamespace('node-exec');
    const client = KubeClient.fromKubeConfig(testKubeConfig());
    await client.create(PODS, namespace, {
      metadata: { name: 'probe' },
      spec: {
        automountServiceAccountToken: false,
        securityContext: { runAsUser: 1983, runAsNonRoot: true },
        containers: [{ name: 'c', image: node?.images.standinRunner.ref, env: [{ name: 'KWC_STANDIN_SCRIPT', value: 'echo ready; trap "exit 0" TERM; while :; do sleep 1 & wait $!; done' }] }],
      },
    });
    await kubectlOk(['wait', '--for=condition=Ready', 'pod/probe', '-n', namespace, '--timeout=60s']);
    expect(await kubectlOk(['logs', 'probe', '-n', namespace])).toContain('ready');
    expect((await kubectlOk(['exec', 'probe', '-n', namespace, '--', 'id', '-u'])).trim()).toBe('1983');
  });
});

describe.skipIf(skipWithout('the node', node !== null))('the controller manager', () => {
  it('gives a new namespace its default ServiceAccount and the cluster CA ConfigMap', async () => {
    const namespace = await createTestNamespace('node-sa');
    await waitFor('the default ServiceAccount', async () => (await kubectl(['get', 'serviceaccount', 'default', '-n', namespace])).code === 0, 30_000);
    await waitFor('kube-root-ca.crt', async () => (await kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', namespace])).code === 0, 30_000);
  });

  it('garbage-collects dependents of a deleted owner, and deletes a namespace with what is in it', async () => {
    const namespace = await createTestNamespace('node-gc');
    const client = KubeClient.fromKubeConfig(testKubeConfig());
    const owner = await client.create(SECRETS, namespace, { metadata: { name: 'owner' } });
    await client.create(SECRETS, namespace, { metadata: { name: 'dependent', ownerReferences: [{ apiVersion: 'v1', kind: 'Secret', name: 'owner', uid: owner.metadata?.uid ?? '' }] } });
    await kubectlOk(['delete', 'secret', 'owner', '-n', namespace]);
    await waitFor('the dependent to be collected', async () => (await client.list(SECRETS, namespace)).items.every((c) => c.metadata?.name !== 'dependent'), 60_000);
    await kubectlOk(['delete', 'namespace', namespace, '--timeout=60s']);
    expect((await kubectl(['get', 'namespace', namespace])).stderr).toContain('NotFound');
  });
});

describe.skipIf(skipWithout('the node', node !== null))('pod networking', () => {
  it('reaches the API server through the kubernetes Service, and nothing beyond the machine; the host forwards nothing', async () => {
    const namespace = await createTestNamespace('node-net');
    const client = KubeClient.fromKubeConfig(testKubeConfig());
    const script = [
      'ip route',
      // busybox nc connects, sends a line and closes: success means the connection was made.
      'echo | nc -w 3 "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT" >/dev/null && echo "api server: reached" || echo "api server: unreachable"',
      'echo | nc -w 3 1.1.1.1 443 && echo "outside: reached" || echo "outside: unreachable"',
    ].join('; ');
    await client.create(PODS, namespace, {
      metadata: { name: 'net' },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        securityContext: { runAsUser: 1983, runAsNonRoot: true },
        containers: [{ name: 'c', image: node?.images.standinRunner.ref, env: [{ name: 'KWC_STANDIN_SCRIPT', value: script }] }],
      },
    });
    await waitFor('the pod to finish', async () => (await client.get(PODS, namespace, 'net')).status?.phase === 'Succeeded', 60_000);
    const log = await kubectlOk(['logs', 'net', '-n', namespace]);
    expect(log).toContain('api server: reached');
    expect(log).toContain('outside: unreachable');
    expect(log).not.toContain('default');
    expect(readSysctl('net.ipv4.ip_forward')).toBe('0');
  });
});
