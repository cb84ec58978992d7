/**
 * The node's configuration, as the pure builders write it: the settings that
 * keep pod traffic on the machine, give the kubelet its own identity, and let
 * nodes run side by side.
 */
import { describe, expect, it } from 'vitest';
import { apiserverArgs, controllerManagerArgs, schedulerArgs } from '../../src/cluster/control-plane.js';
import { chooseVersion, upstreamVersion } from '../../src/cluster/debian.js';
import { KUBERNETES_SERVICE_IP, nftRuleset, nodeNetwork, SERVICE_CIDR } from '../../src/cluster/node-host.js';
import { cniConfig, containerdConfig, kubeletConfig, nodePaths } from '../../src/cluster/node.js';

const net = nodeNetwork(3);
const paths = nodePaths('/var/tmp/cluster', net);

describe('node network', () => {
  it('gives node N its own bridge, /24, nftables table and cgroup', () => {
    expect(net).toEqual({ index: 3, bridge: 'kwc3', cidr: '10.244.3.0/24', gateway: '10.244.3.1', nftTable: 'kwc3', cgroup: 'kwc3' });
    expect(nodeNetwork(4).cidr).not.toBe(net.cidr);
  });

  it('refuses an index outside 0-99', () => {
    expect(() => nodeNetwork(100)).toThrow(/0-99, got 100/);
    expect(() => nodeNetwork(-1)).toThrow(/got -1/);
  });

  it('translates only the kubernetes Service, only for traffic from its own bridge, and shuts the bridge address to other interfaces', () => {
    const rules = nftRuleset(net, 34567);
    expect(rules).toContain('table ip kwc3 {');
    expect(rules).toContain(`iifname "kwc3" ip daddr ${KUBERNETES_SERVICE_IP} tcp dport 443 dnat to 10.244.3.1:34567`);
    expect(rules).toContain('ip daddr 10.244.3.1 iifname != { "lo", "kwc3" } drop');
    expect(rules).not.toMatch(/masquerade|snat/);
  });
});

describe('CNI configuration', () => {
  const cni = JSON.parse(cniConfig(net, paths)) as { plugins: Record<string, unknown>[] };
  const bridge = cni.plugins[0] as { type: string; bridge: string; isGateway: boolean; ipMasq: boolean; ipam: { ranges: unknown; routes: unknown; dataDir: string } };

  it('is a bridge without gateway or masquerade, so the kernel never forwards pod traffic', () => {
    expect(bridge).toMatchObject({ type: 'bridge', bridge: 'kwc3', isGateway: false, ipMasq: false });
  });

  it('hands out addresses of the node range and routes only the Service range through the host', () => {
    expect(bridge.ipam.ranges).toEqual([[{ subnet: '10.244.3.0/24', gateway: '10.244.3.1' }]]);
    expect(bridge.ipam.routes).toEqual([{ dst: SERVICE_CIDR, gw: '10.244.3.1' }]);
    expect(bridge.ipam.dataDir).toBe('/var/tmp/cluster/node/cni-ipam');
  });
});

describe('kubelet configuration', () => {
  const config = JSON.parse(kubeletConfig(net, paths, { port: 40001, healthzPort: 40002 })) as Record<string, unknown>;

  it('serves on the node address with its own certificate and authenticates every caller', () => {
    expect(config).toMatchObject({
      address: '10.244.3.1',
      port: 40001,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 40002,
      tlsCertFile: paths.kubeletCert,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: paths.caFile } },
      authorization: { mode: 'Webhook' },
    });
  });

  it('keeps its cgroups, pod logs and sockets apart from other nodes, and adds no iptables chains', () => {
    expect(config).toMatchObject({
      cgroupRoot: '/kwc3',
      podLogsDir: '/var/tmp/cluster/node/pod-logs',
      containerRuntimeEndpoint: 'unix:///run/kwc3/containerd.sock',
      makeIPTablesUtilChains: false,
      cgroupDriver: 'cgroupfs',
    });
  });

  it('never garbage-collects the imported images, which cannot be pulled again', () => {
    expect(config.imageGCHighThresholdPercent).toBe(100);
  });
});

describe('containerd configuration', () => {
  const toml = containerdConfig(paths, 'localhost/kwc-pause:abc');

  it('uses its own socket, state and runc root, and the locally built pause image', () => {
    expect(toml).toContain('address = "/run/kwc3/containerd.sock"');
    expect(toml).toContain('root = "/var/tmp/cluster/node/containerd"');
    expect(toml).toContain('state = "/run/kwc3/containerd"');
    expect(toml).toContain('Root = "/run/kwc3/runc"');
    expect(toml).toContain('sandbox_image = "localhost/kwc-pause:abc"');
    expect(toml).toContain('conf_dir = "/var/tmp/cluster/node/cni"');
  });

  it('clamps oom_score_adj, which machines without CAP_SYS_RESOURCE cannot lower', () => {
    expect(toml).toContain('restrict_oom_score_adj = true');
  });
});

describe('control plane flags', () => {
  const files = { ca: 'ca', servingCert: 's.crt', servingKey: 's.key', saPub: 'sa.pub', saKey: 'sa.key', adminCert: 'a', adminKey: 'a', kubeletClientCert: 'kc.crt', kubeletClientKey: 'kc.key' };

  it('with a node: Node and RBAC authorization, NodeRestriction, its own kubelet client certificate, kubelets verified, listening where pods reach it', () => {
    const args = apiserverArgs(files, 'http://127.0.0.1:2379', '10.244.3.1', 6443, true);
    expect(args).toEqual(
      expect.arrayContaining([
        '--bind-address=10.244.3.1',
        '--advertise-address=10.244.3.1',
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--kubelet-client-certificate=kc.crt',
        '--kubelet-client-key=kc.key',
        '--kubelet-certificate-authority=ca',
        '--kubelet-preferred-address-types=InternalIP',
      ]),
    );
    expect(args.some((a) => a.startsWith('--disable-admission-plugins'))).toBe(false);
  });

  it('without a node: RBAC only, and no ServiceAccount admission (no controller makes the ServiceAccounts)', () => {
    const args = apiserverArgs(files, 'http://127.0.0.1:2379', '127.0.0.1', 6443, false);
    expect(args).toContain('--authorization-mode=RBAC');
    expect(args).toContain('--disable-admission-plugins=ServiceAccount');
    expect(args.some((a) => a.startsWith('--kubelet-client'))).toBe(false);
  });

  it('runs the controller manager with service-account tokens and per-controller credentials, on loopback', () => {
    const args = controllerManagerArgs('/k', files, 10257);
    expect(args).toEqual(expect.arrayContaining(['--service-account-private-key-file=sa.key', '--root-ca-file=ca', '--use-service-account-credentials=true', '--bind-address=127.0.0.1', '--secure-port=10257']));
    expect(args.some((a) => a.startsWith('--controllers='))).toBe(false);
    expect(schedulerArgs('/k', 10259)).toEqual(expect.arrayContaining(['--kubeconfig=/k', '--bind-address=127.0.0.1', '--secure-port=10259']));
  });
});

describe('Debian versions', () => {
  it('strips the epoch and the Debian revision', () => {
    expect(upstreamVersion('1:1.35.0-4+deb12u1+b1')).toBe('1.35.0');
    expect(upstreamVersion('1.6.20~ds1-1+deb12u3')).toBe('1.6.20~ds1');
    expect(upstreamVersion('2.36-9+deb12u14')).toBe('2.36');
  });

  it('takes the pin when the archive has it', () => {
    expect(chooseVersion({ name: 'libc6', pinned: '2.36-9+deb12u14' }, ['2.36-9+deb12u15', '2.36-9+deb12u14'])).toEqual({ version: '2.36-9+deb12u14' });
  });

  it('takes a security update of the same upstream version, with a warning naming both', () => {
    const chosen = chooseVersion({ name: 'libc6', pinned: '2.36-9+deb12u14' }, ['2.36-9+deb12u15']);
    expect(chosen.version).toBe('2.36-9+deb12u15');
    expect(chosen.warning).toMatch(/libc6 2\.36-9\+deb12u14 is no longer in the archive; using 2\.36-9\+deb12u15/);
  });

  it('refuses another upstream version, naming the pin and the offer', () => {
    expect(() => chooseVersion({ name: 'containerd', pinned: '1.6.20~ds1-1+deb12u3' }, ['1.7.24~ds1-1'])).toThrow(
      /containerd: the pinned version 1\.6\.20~ds1-1\+deb12u3 is not available and the archive offers 1\.7\.24~ds1-1/,
    );
    expect(() => chooseVersion({ name: 'runc', pinned: '1.1.5+ds1-1' }, [])).toThrow(/offers nothing/);
  });
});
