import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { binaryPaths, parseVersionsEnv } from '../../src/cluster/binaries.js';
import { loadKubeConfig, renderAdminKubeconfig } from '../../src/cluster/kubeconfig.js';
import { freeLoopbackPorts } from '../../src/cluster/ports.js';

describe('versions.env', () => {
  it('reads the pinned versions and ignores comments', () => {
    expect(parseVersionsEnv('# pinned\nKUBE_VERSION=v1.34.4\n\nETCD_VERSION=v3.6.8\nCRICTL_VERSION=v1.34.0\nDEB_RUNC=1.1.5+ds1-1+deb12u1\n')).toEqual({
      kubernetes: 'v1.34.4',
      etcd: 'v3.6.8',
      crictl: 'v1.34.0',
    });
  });

  it('refuses a file without every version, naming them', () => {
    expect(() => parseVersionsEnv('KUBE_VERSION=v1.34.4\n')).toThrow(/ETCD_VERSION.*CRICTL_VERSION/);
  });

  it('caches binaries per version, so a version bump never reuses an old build', () => {
    const a = binaryPaths({ KWC_BIN_CACHE: '/c', KWC_KUBE_VERSION: 'v1.34.4', KWC_ETCD_VERSION: 'v3.6.8', KWC_CRICTL_VERSION: 'v1.34.0' });
    const b = binaryPaths({ KWC_BIN_CACHE: '/c', KWC_KUBE_VERSION: 'v1.35.0', KWC_ETCD_VERSION: 'v3.6.9', KWC_CRICTL_VERSION: 'v1.35.0' });
    expect(a.kubeApiserver).toBe('/c/kubernetes-v1.34.4/kube-apiserver');
    expect(a.kubeControllerManager).toBe('/c/kubernetes-v1.34.4/kube-controller-manager');
    expect(a.kubeScheduler).toBe('/c/kubernetes-v1.34.4/kube-scheduler');
    expect(a.kubelet).toBe('/c/kubernetes-v1.34.4/kubelet');
    expect(a.kubectl).toBe('/c/kubernetes-v1.34.4/kubectl');
    expect(a.etcd).toBe('/c/etcd-v3.6.8/etcd');
    expect(a.crictl).toBe('/c/cri-tools-v1.34.0/crictl');
    expect(b.kubeApiserver).not.toBe(a.kubeApiserver);
    expect(b.kubelet).not.toBe(a.kubelet);
    expect(b.etcd).not.toBe(a.etcd);
    expect(b.crictl).not.toBe(a.crictl);
  });
});

describe('admin kubeconfig', () => {
  it('is a self-contained file client libraries load as the current context', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kwc-kubeconfig-'));
    const path = join(dir, 'kubeconfig');
    writeFileSync(
      path,
      renderAdminKubeconfig({ server: 'https://127.0.0.1:6443', caCertPem: 'CA', clientCertPem: 'CERT', clientKeyPem: 'KEY' }),
    );
    const kc = loadKubeConfig(path);
    rmSync(dir, { recursive: true, force: true });
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(Buffer.from(kc.getCurrentCluster()?.caData ?? '', 'base64').toString()).toBe('CA');
    expect(Buffer.from(kc.getCurrentUser()?.certData ?? '', 'base64').toString()).toBe('CERT');
    expect(Buffer.from(kc.getCurrentUser()?.keyData ?? '', 'base64').toString()).toBe('KEY');
  });
});

describe('free loopback ports', () => {
  it('hands out distinct ports', async () => {
    const ports = await freeLoopbackPorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const port of ports) expect(port).toBeGreaterThan(0);
  });
});
