/**
 * What a local node changes on the host, and how `cluster:down` puts it back.
 *
 * ## Networking, and why pod traffic never leaves the machine
 *
 * Each node gets a bridge `kwc<N>` with the address `10.244.<N>.1/24` and pods
 * on `10.244.<N>.0/24` (CNI bridge + host-local). The bridge plugin runs with
 * `isGateway: false` and `ipMasq: false`: it would otherwise turn on
 * `net.ipv4.ip_forward` and masquerade, and pods could reach any network the
 * host can. Pods get two routes only: their /24, and the Service range
 * `10.96.0.0/16` through the bridge address. `ip_forward` stays 0, so the
 * host routes nothing anywhere; a pod can reach other pods on the bridge and
 * the host itself on the bridge address, nothing else.
 *
 * Pods cannot reach anything bound to 127.0.0.1 (another network namespace),
 * so what pods must reach listens on the bridge address: the API server, the
 * kubelet (the API server dials the Node's InternalIP for logs, exec and
 * port-forward) and, in the tests and the demo, the reference backend (whose
 * pool tokens carry that address).
 *
 * In-cluster clients find the API server as `https://$KUBERNETES_SERVICE_HOST:
 * $KUBERNETES_SERVICE_PORT`, the `kubernetes` Service's ClusterIP
 * `10.96.0.1:443`, which only exists where something like kube-proxy
 * translates it. We run no kube-proxy: it would add iptables chains for every
 * Service, set `route_localnet`, and Service traffic from a pod to another
 * pod would need forwarding anyway. Instead the node's own nftables table
 * `kwc<N>` holds exactly one translation, `10.96.0.1:443` arriving from the
 * bridge -> the API server on the bridge address. Pods' traffic to that
 * address ends on the host (INPUT), so no forwarding is involved. Other
 * Services have no ClusterIP routing (reach them with `kubectl port-forward`,
 * or their endpoints' pod IPs from the host).
 *
 * The same table drops packets for the bridge address that arrive on any
 * interface but the bridge and loopback, so a machine on the host's network
 * cannot reach what listens there by routing to it.
 *
 * ## The ledger
 *
 * Several nodes may run side by side (a developer's `cluster:up` and a test
 * run). The kubelet changes six kernel settings ({@link KUBELET_SYSCTLS}), and
 * containerd and the kubelet create a few directories outside the cluster's
 * own (`/run/netns`, `/var/lib/cni`, ...). `/run/kwc-host.json` records their
 * state from before the first node started, and which nodes run; the last
 * node to stop puts them back. `/run` is a tmpfs, so a reboot clears the
 * record together with what it describes.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommandSync, sleepSync } from './commands.js';
import { withFileLockSync } from './lock.js';
import { isRunning } from './processes.js';

/** The Service range of every local cluster; the `kubernetes` Service gets its first address. */
export const SERVICE_CIDR = '10.96.0.0/16';
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
/** The name the kubelet registers its Node under. */
export const NODE_NAME = 'kwc-node';

const MAX_NODES = 100;

/** The network and names of node number `index`. */
export interface NodeNetwork {
  index: number;
  bridge: string;
  cidr: string;
  /** The bridge's own address: the host as pods see it. */
  gateway: string;
  nftTable: string;
  /** Name of the cgroup under which the kubelet puts `kubepods`, in every hierarchy. */
  cgroup: string;
}

/** containerd's state and socket and runc's state: short paths on a tmpfs, as containerd's own /run/containerd. */
export function nodeRunDir(index: number): string {
  return `/run/kwc${index}`;
}

export function nodeNetwork(index: number): NodeNetwork {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_NODES) throw new Error(`node index must be 0-${MAX_NODES - 1}, got ${index}`);
  return {
    index,
    bridge: `kwc${index}`,
    cidr: `10.244.${index}.0/24`,
    gateway: `10.244.${index}.1`,
    nftTable: `kwc${index}`,
    cgroup: `kwc${index}`,
  };
}

/** The node's nftables table; see the module documentation for why each rule exists. */
export function nftRuleset(net: NodeNetwork, apiserverPort: number): string {
  return [
    `table ip ${net.nftTable} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    iifname "${net.bridge}" ip daddr ${KUBERNETES_SERVICE_IP} tcp dport 443 dnat to ${net.gateway}:${apiserverPort}`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    ip daddr ${net.gateway} iifname != { "lo", "${net.bridge}" } drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The kernel settings the kubelet sets at start (container_manager_linux.go, setupKernelTunables). */
export const KUBELET_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
] as const;

/**
 * Paths outside the cluster's own that containerd, the CNI plugins or the
 * kubelet create when missing, whatever they are configured with (the
 * kubelet's device-plugin socket path is a constant, for one); the last node
 * removes those that did not exist before (directories once empty), deepest
 * first.
 */
export const GLOBAL_PATHS = [
  '/run/netns',
  '/run/containerd/s',
  '/run/containerd',
  '/var/lib/cni/results',
  '/var/lib/cni',
  '/var/log/containers',
  '/var/log/pods',
  '/var/lib/kubelet/device-plugins/kubelet.sock',
  '/var/lib/kubelet/device-plugins',
  '/var/lib/kubelet',
] as const;

function sysctlPath(name: string): string {
  return join('/proc/sys', ...name.split('.'));
}

export function readSysctl(name: string): string {
  return readFileSync(sysctlPath(name), 'utf8').trim();
}

function writeSysctl(name: string, value: string): void {
  writeFileSync(sysctlPath(name), `${value}\n`);
}

/** What a node leaves in the ledger: enough to clean up after it even if its own state directory is gone. */
export interface NodeRecord {
  index: number;
  dir: string;
  containerdSocket: string;
  /** containerd and kubelet; when none runs any more, the node is dead and may be cleaned up by the next one. */
  pids: number[];
}

interface Ledger {
  sysctls: Record<string, string>;
  preexisting: string[];
  netns: string[];
  nodes: NodeRecord[];
}

const LEDGER = '/run/kwc-host.json';
const LEDGER_LOCK = '/run/kwc-host.lock';

function readLedger(): Ledger | undefined {
  try {
    return JSON.parse(readFileSync(LEDGER, 'utf8')) as Ledger;
  } catch {
    return undefined;
  }
}

function writeLedger(ledger: Ledger): void {
  writeFileSync(LEDGER, `${JSON.stringify(ledger, null, 2)}\n`, { mode: 0o600 });
}

function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** Node numbers taken on this host: by a `10.244.<N>.x` address or route, or a `kwc<N>` link (ours or not). */
function usedIndexes(): Set<number> {
  const used = new Set<number>();
  const text = runCommandSync('ip', ['-4', '-o', 'addr', 'show']).stdout + runCommandSync('ip', ['-4', 'route', 'show']).stdout;
  for (const m of text.matchAll(/10\.244\.(\d+)\./g)) used.add(Number(m[1]));
  for (const link of runCommandSync('ip', ['-o', 'link', 'show']).stdout.matchAll(/^\d+: kwc(\d+)[:@]/gm)) used.add(Number(link[1]));
  return used;
}

/**
 * Claims a free node index and records the node in the ledger. The first
 * node also records the host's state as it was. Nodes whose processes are all
 * gone (a killed test run whose teardown never ran) are cleaned up first.
 */
export function claimNode(dir: string, containerdSocket: (net: NodeNetwork) => string, log: (line: string) => void): NodeNetwork {
  return withFileLockSync(LEDGER_LOCK, () => {
    let ledger = readLedger();
    if (ledger !== undefined) {
      for (const dead of ledger.nodes.filter((n) => n.pids.length > 0 && !n.pids.some(isRunning))) {
        log(`cleaning up after node ${dead.index} (${dead.dir}), whose processes are gone`);
        cleanupHost(dead, log);
        ledger.nodes = ledger.nodes.filter((n) => n !== dead);
      }
      if (ledger.nodes.length === 0) {
        restoreHost(ledger, log);
        ledger = undefined;
      }
    }
    ledger ??= {
      sysctls: Object.fromEntries(KUBELET_SYSCTLS.map((name) => [name, readSysctl(name)])),
      preexisting: GLOBAL_PATHS.filter((p) => existsSync(p)),
      netns: listNetns(),
      nodes: [],
    };
    const used = usedIndexes();
    for (const n of ledger.nodes) used.add(n.index);
    let index = 0;
    while (used.has(index)) index++;
    const net = nodeNetwork(index);
    // Until the node's own processes run, the claiming process stands for them.
    ledger.nodes.push({ index, dir, containerdSocket: containerdSocket(net), pids: [process.pid] });
    writeLedger(ledger);
    return net;
  });
}

/** Records the node's processes, so that a later node can tell whether it is still alive. */
export function recordNodePids(index: number, pids: number[]): void {
  withFileLockSync(LEDGER_LOCK, () => {
    const ledger = readLedger();
    const node = ledger?.nodes.find((n) => n.index === index);
    if (ledger === undefined || node === undefined) return;
    node.pids = pids;
    writeLedger(ledger);
  });
}

/**
 * Removes the node from the ledger after its host pieces are cleaned up;
 * the last node out restores the kernel settings and removes the global
 * directories that were not there before.
 */
export function releaseNode(record: NodeRecord, log: (line: string) => void): void {
  withFileLockSync(LEDGER_LOCK, () => {
    const ledger = readLedger();
    const others = ledger?.nodes.filter((n) => n.index !== record.index) ?? [];
    cleanupHost(record, log, others.length === 0 ? new Set(ledger?.netns ?? listNetns()) : undefined);
    if (ledger === undefined) return;
    ledger.nodes = others;
    if (others.length === 0) restoreHost(ledger, log);
    else writeLedger(ledger);
  });
}

function restoreHost(ledger: Ledger, log: (line: string) => void): void {
  for (const [name, value] of Object.entries(ledger.sysctls)) {
    try {
      if (readSysctl(name) !== value) {
        writeSysctl(name, value);
        log(`restored ${name} = ${value}`);
      }
    } catch (error) {
      log(`could not restore ${name} to ${value}: ${(error as Error).message}`);
    }
  }
  for (const path of GLOBAL_PATHS) {
    if (ledger.preexisting.includes(path) || !existsSync(path)) continue;
    try {
      if (lstatSync(path).isDirectory()) rmdirSync(path);
      else unlinkSync(path);
    } catch (error) {
      log(`left ${path} in place: ${(error as NodeJS.ErrnoException).code === 'ENOTEMPTY' ? 'not empty' : (error as Error).message}`);
    }
  }
  rmSync(LEDGER, { force: true });
}

/** The mount points of cgroup hierarchies (v1 controllers and the v2 tree). */
export function cgroupMounts(): string[] {
  return mountInfo()
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2')
    .map((m) => m.mountPoint);
}

interface Mount {
  mountPoint: string;
  fsType: string;
}

function unescapeMount(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function mountInfo(): Mount[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const fields = line.split(' ');
      const sep = fields.indexOf('-');
      return { mountPoint: unescapeMount(fields[4] ?? ''), fsType: fields[sep + 1] ?? '' };
    });
}

/** The kubelet refuses a cgroupRoot that does not exist; it must exist in every hierarchy. */
export function createCgroupRoot(name: string): void {
  for (const mount of cgroupMounts()) {
    const dir = join(mount, name);
    if (!existsSync(dir)) runCommandSync('mkdir', [dir]);
  }
}

function cgroupDirsDepthFirst(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
    } catch {
      return;
    }
    for (const e of entries) walk(e);
    out.push(dir);
  };
  walk(root);
  return out;
}

/** Kills whatever still runs in the node's cgroups, then removes them, deepest first. */
export function removeCgroupTree(name: string, log: (line: string) => void): void {
  for (const mount of cgroupMounts()) {
    const root = join(mount, name);
    if (!existsSync(root)) continue;
    for (let attempt = 0; attempt < 50; attempt++) {
      const dirs = cgroupDirsDepthFirst(root);
      let left = 0;
      for (const dir of dirs) {
        for (const pid of readPids(join(dir, 'cgroup.procs'))) {
          left++;
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
      for (const dir of dirs) {
        try {
          rmdirSync(dir);
        } catch {
          // busy: its processes are still exiting; next attempt
        }
      }
      if (!existsSync(root)) break;
      if (attempt === 49) log(`could not remove cgroup ${root} (${left} processes left)`);
      sleepSync(100);
    }
  }
}

function readPids(file: string): number[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Unmounts everything under `dir` (overlay roots, tmpfs volumes, shm), deepest first. */
export function unmountUnder(dir: string, log: (line: string) => void): void {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = mountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    const res = runCommandSync('umount', ['-l', p]);
    if (res.code !== 0 && existsSync(p)) log(`could not unmount ${p}: ${res.stderr.trim()}`);
  }
}

function inCidr(ip: string, net: NodeNetwork): boolean {
  return ip.startsWith(net.cidr.replace(/0\/24$/, ''));
}

/**
 * Removes pod network namespaces that belong to this node (an address in its
 * range). `unattributed` is the set of namespaces that existed before any
 * node: when this node is the last, every other empty `cni-*` namespace is a
 * leftover of ours and goes too.
 */
function removeNetns(net: NodeNetwork, log: (line: string) => void, preexisting?: Set<string>): void {
  for (const name of listNetns()) {
    if (!name.startsWith('cni-')) continue;
    const addrs = runCommandSync('ip', ['-n', name, '-4', '-o', 'addr', 'show']).stdout;
    const ips = [...addrs.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] ?? '').filter((ip) => !ip.startsWith('127.'));
    const ours = ips.some((ip) => inCidr(ip, net));
    const orphan = ips.length === 0 && preexisting !== undefined && !preexisting.has(name);
    if (!ours && !orphan) continue;
    const res = runCommandSync('ip', ['netns', 'delete', name]);
    if (res.code !== 0) log(`could not delete network namespace ${name}: ${res.stderr.trim()}`);
  }
}

function linkExists(name: string): boolean {
  return existsSync(join('/sys/class/net', name));
}

/** Creates the node's bridge with its address (the plugin, with isGateway false, leaves the bridge's address to us). */
export function createBridge(net: NodeNetwork): void {
  const steps: string[][] = [
    ['link', 'add', net.bridge, 'type', 'bridge'],
    ['addr', 'add', `${net.gateway}/24`, 'dev', net.bridge],
    ['link', 'set', net.bridge, 'up'],
  ];
  for (const args of steps) {
    const res = runCommandSync('ip', args);
    if (res.code !== 0) throw new Error(`ip ${args.join(' ')} failed: ${res.stderr.trim()}`);
  }
}

/** Loads the node's nftables table (replacing an older one of the same name). */
export function applyNftTable(net: NodeNetwork, apiserverPort: number): void {
  deleteNftTable(net);
  const res = runCommandSync('nft', ['-f', '-'], { input: nftRuleset(net, apiserverPort) });
  if (res.code !== 0) throw new Error(`nft -f: ${res.stderr.trim()}`);
}

function deleteNftTable(net: NodeNetwork): void {
  if (runCommandSync('nft', ['list', 'table', 'ip', net.nftTable]).code === 0) runCommandSync('nft', ['delete', 'table', 'ip', net.nftTable]);
}

/**
 * The kubelet links each container's log into /var/log/containers (a path it
 * does not let us choose); the links of this node's containers point into its
 * directory, and go with it.
 */
function removeLogLinks(dir: string): void {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  let names: string[] = [];
  try {
    names = readdirSync('/var/log/containers');
  } catch {
    return;
  }
  for (const name of names) {
    const path = join('/var/log/containers', name);
    try {
      if (readlinkSync(path).startsWith(prefix)) unlinkSync(path);
    } catch {
      // not a link, or gone
    }
  }
}

/** Kills containerd shims that serve this node's containerd (they outlive it). */
export function killShims(containerdSocket: string): void {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!(argv[0] ?? '').endsWith('containerd-shim-runc-v2')) continue;
    const i = argv.indexOf('-address');
    if (i >= 0 && argv[i + 1] === containerdSocket) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/**
 * Everything of one node that lives on the host outside its processes:
 * shims, cgroups, mounts under its directory, pod network namespaces, the
 * nftables table and the bridge. Safe to run more than once.
 */
export function cleanupHost(record: NodeRecord, log: (line: string) => void, preexistingNetns?: Set<string>): void {
  const net = nodeNetwork(record.index);
  killShims(record.containerdSocket);
  removeCgroupTree(net.cgroup, log);
  unmountUnder(record.dir, log);
  unmountUnder(nodeRunDir(record.index), log);
  rmSync(nodeRunDir(record.index), { recursive: true, force: true });
  removeNetns(net, log, preexistingNetns);
  removeLogLinks(record.dir);
  deleteNftTable(net);
  if (linkExists(net.bridge)) {
    const res = runCommandSync('ip', ['link', 'delete', net.bridge]);
    if (res.code !== 0) log(`could not delete bridge ${net.bridge}: ${res.stderr.trim()}`);
  }
}

/**
 * What a node may change on the host, in comparable form: the kernel
 * settings, nftables tables, network links, pod network namespaces, node
 * cgroups, mounts and the global paths. Equal before the first node starts
 * and after the last one stops, or something was left behind.
 */
export interface HostSnapshot {
  sysctls: Record<string, string>;
  nftTables: string[];
  links: string[];
  netns: string[];
  cgroups: string[];
  mounts: string[];
  paths: string[];
}

export function hostSnapshot(): HostSnapshot {
  const cgroups: string[] = [];
  for (const mount of cgroupMounts()) {
    for (const name of readdirSync(mount)) if (/^kwc\d+$/.test(name)) cgroups.push(join(mount, name));
  }
  return {
    sysctls: Object.fromEntries([...KUBELET_SYSCTLS, 'net.ipv4.ip_forward', 'net.ipv4.conf.all.forwarding', 'net.ipv4.conf.all.route_localnet'].map((n) => [n, readSysctl(n)])),
    nftTables: runCommandSync('nft', ['list', 'tables']).stdout.split('\n').filter((l) => l.trim() !== '').sort(),
    links: readdirSync('/sys/class/net').sort(),
    netns: listNetns().sort(),
    cgroups: cgroups.sort(),
    mounts: mountInfo().map((m) => `${m.mountPoint} ${m.fsType}`).sort(),
    paths: GLOBAL_PATHS.filter((p) => existsSync(p)),
  };
}

/** Human-readable differences between two snapshots; empty when equal. */
export function snapshotDifferences(before: HostSnapshot, after: HostSnapshot): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(before.sysctls)) {
    if (after.sysctls[name] !== value) out.push(`${name} was ${value}, is ${after.sysctls[name] ?? '(unreadable)'}`);
  }
  for (const key of ['nftTables', 'links', 'netns', 'cgroups', 'mounts', 'paths'] as const) {
    const added = after[key].filter((x) => !before[key].includes(x));
    const removed = before[key].filter((x) => !after[key].includes(x));
    if (added.length > 0) out.push(`${key} added: ${added.join(', ')}`);
    if (removed.length > 0) out.push(`${key} removed: ${removed.join(', ')}`);
  }
  return out;
}

/** True while some node is recorded on this host (another cluster, or a test run's). */
export function nodesRunning(): boolean {
  return (readLedger()?.nodes.length ?? 0) > 0;
}
