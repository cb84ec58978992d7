import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createControlPlanePki } from '../../src/cluster/pki.js';

describe('throw-away control-plane PKI', async () => {
  const pki = await createControlPlanePki();
  const ca = new X509Certificate(pki.ca.certPem);
  const serving = new X509Certificate(pki.serving.certPem);
  const admin = new X509Certificate(pki.admin.certPem);

  it('has a self-signed CA that signed the serving and admin certificates', () => {
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(serving.checkIssued(ca)).toBe(true);
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(admin.verify(ca.publicKey)).toBe(true);
    expect(serving.ca).toBe(false);
  });

  it('serves the names clients use to reach the API server', () => {
    expect(serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(serving.checkHost('localhost')).toBe('localhost');
    expect(serving.checkHost('kubernetes.default.svc')).toBe('kubernetes.default.svc');
    expect(serving.checkHost('example.com')).toBeUndefined();
    expect(serving.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
  });

  it('makes the admin a client in system:masters and not a server', () => {
    expect(admin.subject).toContain('O=system:masters');
    expect(admin.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(admin.keyUsage).not.toContain('1.3.6.1.5.5.7.3.1');
  });

  it('pairs every certificate with its own private key', () => {
    for (const issued of [pki.ca, pki.serving, pki.admin]) {
      const cert = new X509Certificate(issued.certPem);
      expect(cert.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true);
    }
    const saPublic = createPublicKey(pki.serviceAccount.publicKeyPem).export({ format: 'pem', type: 'spki' });
    const derived = createPublicKey(createPrivateKey(pki.serviceAccount.privateKeyPem)).export({ format: 'pem', type: 'spki' });
    expect(saPublic).toBe(derived);
  });

  it('is valid now, including for a clock a little behind', () => {
    const now = Date.now();
    expect(new Date(serving.validFrom).getTime()).toBeLessThan(now - 60_000);
    expect(new Date(serving.validTo).getTime()).toBeGreaterThan(now + 24 * 60 * 60 * 1000);
  });
});

describe('PKI of a cluster with a node', async () => {
  const pki = await createControlPlanePki({ serverIps: ['10.244.3.1', '10.96.0.1'], node: { name: 'kwc-node', ip: '10.244.3.1' } });
  const ca = new X509Certificate(pki.ca.certPem);
  const components = pki.components;
  const cert = (pem: string | undefined): X509Certificate => new X509Certificate(pem ?? '');

  it('serves the bridge address and the kubernetes Service ClusterIP, which pods use', () => {
    const serving = cert(pki.serving.certPem);
    expect(serving.checkIP('10.244.3.1')).toBe('10.244.3.1');
    expect(serving.checkIP('10.96.0.1')).toBe('10.96.0.1');
    expect(serving.checkIP('10.244.4.1')).toBeUndefined();
  });

  it('gives the kubelet the identity the Node authorizer and NodeRestriction expect', () => {
    const client = cert(components?.kubeletClient.certPem);
    expect(client.subject).toContain('CN=system:node:kwc-node');
    expect(client.subject).toContain('O=system:nodes');
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(client.verify(ca.publicKey)).toBe(true);
  });

  it('gives the kubelet a serving certificate for the node address that the API server can verify', () => {
    const serving = cert(components?.kubeletServing.certPem);
    expect(serving.checkIP('10.244.3.1')).toBe('10.244.3.1');
    expect(serving.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    expect(serving.verify(ca.publicKey)).toBe(true);
  });

  it('gives each component its own name and no superuser group', () => {
    expect(cert(components?.controllerManager.certPem).subject).toBe('CN=system:kube-controller-manager');
    expect(cert(components?.scheduler.certPem).subject).toBe('CN=system:kube-scheduler');
    expect(cert(components?.apiserverKubeletClient.certPem).subject).toBe('CN=kube-apiserver-kubelet-client');
    for (const c of [components?.controllerManager, components?.scheduler, components?.apiserverKubeletClient, components?.kubeletClient]) {
      expect(cert(c?.certPem).subject).not.toContain('system:masters');
      expect(cert(c?.certPem).checkPrivateKey(createPrivateKey(c?.keyPem ?? ''))).toBe(true);
    }
  });

  it('is absent from a control plane without a node', async () => {
    expect((await createControlPlanePki()).components).toBeUndefined();
  });
});
