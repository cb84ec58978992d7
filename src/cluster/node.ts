/**
 * The node: containerd (with runc and the bridge CNI plugin) and a kubelet
 * with its own identity, registered as {@link NODE_NAME}. Configuration is
 * written by the pure functions below (unit-tested); host changes and their
 * undoing are in node-host.ts.
 *
 * Everything a node owns lives under `<cluster dir>/node/` and
 * `/run/kwc<N>/` (containerd's state and socket, runc's state: short paths,
 * on a tmpfs, as containerd's own /run/containerd), so several nodes can run
 * side by side: each has its own bridge, pod range, cgroup subtree, ports,
 * containerd and pod log directory.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand, runCommandSync, withSbinPath } from './commands.js';
import { renderAdminKubeconfig } from './kubeconfig.js';
import { NODE_NAME, nodeRunDir, SERVICE_CIDR, type NodeNetwork } from './node-host.js';
import type { IssuedCertificate } from './pki.js';
import { isRunning, spawnInOwnGroup, stopGroupSync, tailOf } from './processes.js';

/** Where a node keeps its files. */
export interface NodePaths {
  /** `<cluster dir>/node` */
  dir: string;
  /** `/run/kwc<N>`: containerd's state and socket, runc's state. */
  runDir: string;
  containerdConfig: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  runcRoot: string;
  cniConfDir: string;
  cniIpamDir: string;
  kubeletConfig: string;
  kubeletKubeconfig: string;
  kubeletRoot: string;
  kubeletCert: string;
  kubeletKey: string;
  podLogs: string;
  caFile: string;
  containerdLog: string;
  kubeletLog: string;
}

export function nodePaths(clusterDir: string, net: NodeNetwork): NodePaths {
  const dir = join(clusterDir, 'node');
  const runDir = nodeRunDir(net.index);
  return {
    dir,
    runDir,
    containerdConfig: join(dir, 'containerd.toml'),
    containerdRoot: join(dir, 'containerd'),
    containerdState: join(runDir, 'containerd'),
    containerdSocket: join(runDir, 'containerd.sock'),
    runcRoot: join(runDir, 'runc'),
    cniConfDir: join(dir, 'cni'),
    cniIpamDir: join(dir, 'cni-ipam'),
    kubeletConfig: join(dir, 'kubelet.yaml'),
    kubeletKubeconfig: join(dir, 'kubelet.kubeconfig'),
    kubeletRoot: join(dir, 'kubelet'),
    kubeletCert: join(dir, 'kubelet.crt'),
    kubeletKey: join(dir, 'kubelet.key'),
    podLogs: join(dir, 'pod-logs'),
    caFile: join(dir, 'ca.crt'),
    containerdLog: join(clusterDir, 'containerd.log'),
    kubeletLog: join(clusterDir, 'kubelet.log'),
  };
}

/** containerd's configuration (format version 2, as containerd 1.6 reads it). */
export function containerdConfig(paths: NodePaths, sandboxImage: string): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'version = 2',
    `root = ${q(paths.containerdRoot)}`,
    `state = ${q(paths.containerdState)}`,
    // Snapshotters and tracing this node does not use; fewer plugins, fewer log lines.
    'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
    '[grpc]',
    `  address = ${q(paths.containerdSocket)}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(join(paths.containerdRoot, 'opt'))}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    // Built and imported locally (npm run images); there is no registry.
    `  sandbox_image = ${q(sandboxImage)}`,
    // kubectl exec/logs/port-forward: the kubelet proxies to this server on loopback.
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    // Writing a negative oom_score_adj needs CAP_SYS_RESOURCE, which some
    // machines (this project's CI among them) withhold even from root: runc then
    // fails every sandbox ("failed to update /proc/self/oom_score_adj"). Clamp
    // the kubelet's scores to containerd's own instead.
    '  restrict_oom_score_adj = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '        SystemdCgroup = false',
    `        Root = ${q(paths.runcRoot)}`,
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    '    bin_dir = "/usr/lib/cni"',
    `    conf_dir = ${q(paths.cniConfDir)}`,
    '    max_conf_num = 1',
    '',
  ].join('\n');
}

/** The pod network: see node-host.ts for why there is no gateway, no masquerade and one extra route. */
export function cniConfig(net: NodeNetwork, paths: NodePaths): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: `kwc${net.index}`,
      plugins: [
        {
          type: 'bridge',
          bridge: net.bridge,
          isGateway: false,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: net.cidr, gateway: net.gateway }]],
            routes: [{ dst: SERVICE_CIDR, gw: net.gateway }],
            dataDir: paths.cniIpamDir,
          },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

export interface KubeletPorts {
  port: number;
  healthzPort: number;
}

/** The kubelet's configuration file (KubeletConfiguration v1beta1; JSON is YAML). */
export function kubeletConfig(net: NodeNetwork, paths: NodePaths, ports: KubeletPorts): string {
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    containerRuntimeEndpoint: `unix://${paths.containerdSocket}`,
    // containerd 1.6 cannot tell the kubelet its cgroup driver; no systemd here.
    cgroupDriver: 'cgroupfs',
    // Its own subtree in every hierarchy, so nodes side by side do not share "kubepods".
    cgroupRoot: `/${net.cgroup}`,
    failCgroupV1: false,
    failSwapOn: false,
    // The API server reaches the kubelet on the Node's InternalIP, the bridge address.
    address: net.gateway,
    port: ports.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: ports.healthzPort,
    tlsCertFile: paths.kubeletCert,
    tlsPrivateKeyFile: paths.kubeletKey,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true, cacheTTL: '10s' },
      x509: { clientCAFile: paths.caFile },
    },
    authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '10s', cacheUnauthorizedTTL: '5s' } },
    // Per node: two kubelets sharing /var/log/pods would remove each other's logs.
    podLogsDir: paths.podLogs,
    // The node's own nftables table is all the packet filtering it needs;
    // the kubelet's KUBE-FIREWALL and canary chains would outlive it.
    makeIPTablesUtilChains: false,
    // Imported images cannot be pulled again: never garbage-collect them.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // A shared CI machine's disk may be fuller than the defaults allow; a
    // node that evicts everything for a 90 %-full disk helps nobody here.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    serializeImagePulls: false,
    resolvConf: '/etc/resolv.conf',
    maxPods: 110,
    clusterDomain: 'cluster.local',
    // Status reaches the API about a second after it changes (PLEG relist) either way.
    nodeStatusUpdateFrequency: '10s',
    syncFrequency: '10s',
    fileCheckFrequency: '20s',
    shutdownGracePeriod: '0s',
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export interface NodeStartOptions {
  clusterDir: string;
  net: NodeNetwork;
  kubeletBinary: string;
  /** The API server as the node reaches it. */
  server: string;
  caPem: string;
  kubeletClient: IssuedCertificate;
  kubeletServing: IssuedCertificate;
  ports: KubeletPorts;
  /** The pause image: its reference and the OCI archive to import before the kubelet starts. */
  sandboxImage: { ref: string; archive: string };
  /** Further image archives to import (the controller, the stand-ins). */
  images?: readonly string[];
  log: (line: string) => void;
}

export interface RunningNode {
  paths: NodePaths;
  containerdPid: number;
  kubeletPid: number;
}

/** `ctr` against this node's containerd, in the namespace the CRI uses. */
export function ctrArgs(paths: Pick<NodePaths, 'containerdSocket'>, args: readonly string[]): string[] {
  return ['--address', paths.containerdSocket, '--namespace', 'k8s.io', ...args];
}

/** Imports OCI archives into the node's containerd, where the kubelet finds them without a registry. */
export async function importImages(paths: Pick<NodePaths, 'containerdSocket'>, archives: readonly string[]): Promise<void> {
  for (const archive of archives) {
    const res = await runCommand('ctr', ctrArgs(paths, ['images', 'import', '--no-unpack', archive]));
    if (res.code !== 0) throw new Error(`ctr images import ${archive}: ${(res.stderr || res.stdout).trim()}`);
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, pid: number, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isRunning(pid)) throw new Error(`the process for ${what} exited; last lines of ${log}:\n${tailOf(log)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last lines of ${log}:\n${tailOf(log)}`);
    await sleep(100);
  }
}

/** Starts containerd, imports the images, starts the kubelet. The caller waits for the Node to be Ready. */
export async function startNode(options: NodeStartOptions): Promise<RunningNode> {
  const { net, log } = options;
  const paths = nodePaths(options.clusterDir, net);
  for (const d of [paths.dir, paths.runDir, paths.cniConfDir, paths.cniIpamDir, paths.kubeletRoot, paths.podLogs]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(paths.containerdConfig, containerdConfig(paths, options.sandboxImage.ref));
  writeFileSync(join(paths.cniConfDir, '10-kwc.conflist'), cniConfig(net, paths));
  writeFileSync(paths.caFile, options.caPem);
  writeFileSync(paths.kubeletCert, options.kubeletServing.certPem);
  writeFileSync(paths.kubeletKey, options.kubeletServing.keyPem, { mode: 0o600 });
  writeFileSync(paths.kubeletConfig, kubeletConfig(net, paths, options.ports));
  writeFileSync(
    paths.kubeletKubeconfig,
    renderAdminKubeconfig({
      server: options.server,
      caCertPem: options.caPem,
      clientCertPem: options.kubeletClient.certPem,
      clientKeyPem: options.kubeletClient.keyPem,
      name: 'kwc',
      user: `system:node:${NODE_NAME}`,
    }),
    { mode: 0o600 },
  );

  const env = withSbinPath(process.env);
  log(`starting containerd (socket ${paths.containerdSocket})`);
  const containerd = spawnInOwnGroup('containerd', ['--config', paths.containerdConfig, '--log-level', 'warn'], paths.containerdLog, env);
  try {
    await waitFor(
      'containerd to answer',
      async () => existsSync(paths.containerdSocket) && (await runCommand('ctr', ['--address', paths.containerdSocket, 'version'])).code === 0,
      containerd.pid,
      paths.containerdLog,
      30_000,
    );
    log(`importing ${1 + (options.images?.length ?? 0)} images into containerd`);
    await importImages(paths, [options.sandboxImage.archive, ...(options.images ?? [])]);
  } catch (error) {
    stopGroupSync(containerd.pid);
    throw error;
  }

  log(`starting the kubelet (node ${NODE_NAME} at ${net.gateway}, pods on ${net.cidr})`);
  const kubelet = spawnInOwnGroup(
    options.kubeletBinary,
    [
      `--config=${paths.kubeletConfig}`,
      `--kubeconfig=${paths.kubeletKubeconfig}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${net.gateway}`,
      `--root-dir=${paths.kubeletRoot}`,
      '--v=0',
    ],
    paths.kubeletLog,
    env,
  );
  try {
    await waitFor(
      'the kubelet /healthz',
      () => kubeletHealthy(options.ports.healthzPort),
      kubelet.pid,
      paths.kubeletLog,
      60_000,
    );
  } catch (error) {
    stopGroupSync(kubelet.pid);
    stopGroupSync(containerd.pid);
    throw error;
  }
  return { paths, containerdPid: containerd.pid, kubeletPid: kubelet.pid };
}

async function kubeletHealthy(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
  return res?.status === 200;
}

/**
 * Stops the node's processes: the kubelet first (so it restarts nothing),
 * then every pod sandbox through the CRI (the CNI plugin releases its
 * address and the kernel its network namespace, as on a real node), then
 * containerd. Host leftovers are node-host.ts's cleanupHost.
 */
export function stopNodeProcesses(
  node: { kubeletPid?: number; containerdPid?: number; containerdSocket: string },
  crictl: string,
  owned: (pid: number | undefined) => pid is number,
  log: (line: string) => void,
): void {
  if (owned(node.kubeletPid)) stopGroupSync(node.kubeletPid);
  if (owned(node.containerdPid)) {
    const endpoint = `unix://${node.containerdSocket}`;
    const crictlDo = (args: string[]): string => {
      const res = runCommandSync(crictl, ['--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--timeout', '30s', ...args], { timeoutMs: 120_000 });
      if (res.code !== 0) log(`crictl ${args[0] ?? ''}: ${(res.stderr || res.stdout).trim()}`);
      return res.stdout;
    };
    // Everything is thrown away: no grace for the containers (removing a sandbox would give each one 10 s).
    const running = crictlDo(['ps', '--quiet']).split('\n').filter((id) => id !== '');
    if (running.length > 0) crictlDo(['stop', '--timeout', '0', ...running]);
    crictlDo(['rmp', '--all', '--force']);
    stopGroupSync(node.containerdPid);
  }
}
