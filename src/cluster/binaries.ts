import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Walks up from this file so the same code works from src/ (tsx) and from
// the compiled copy in lib/src/, which has no shell script or versions file.
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'src', 'cluster', 'versions.env'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no src/cluster/versions.env above ${start}`);
  }
}

export const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

export interface ControlPlaneVersions {
  kubernetes: string;
  etcd: string;
  crictl: string;
}

export interface ControlPlaneBinaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubelet: string;
  kubectl: string;
  etcd: string;
  crictl: string;
  versions: ControlPlaneVersions;
}

/** The KEY=VALUE lines of a versions file; comments and blank lines ignored. */
export function parseEnvFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Z0-9_]+)=(\S+)\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  return values;
}

/** Parses versions.env, the one place the cluster's versions are set. */
export function parseVersionsEnv(text: string): ControlPlaneVersions {
  const values = parseEnvFile(text);
  const kubernetes = values.get('KUBE_VERSION');
  const etcd = values.get('ETCD_VERSION');
  const crictl = values.get('CRICTL_VERSION');
  if (kubernetes === undefined || etcd === undefined || crictl === undefined) {
    throw new Error('versions.env must set KUBE_VERSION, ETCD_VERSION and CRICTL_VERSION');
  }
  return { kubernetes, etcd, crictl };
}

export function sourceFile(name: string): string {
  return join(repoRoot, 'src', 'cluster', name);
}

/** The values of src/cluster/versions.env. */
export function clusterVersionsFile(): Map<string, string> {
  return parseEnvFile(readFileSync(sourceFile('versions.env'), 'utf8'));
}

export function controlPlaneVersions(env: NodeJS.ProcessEnv = process.env): ControlPlaneVersions {
  const pinned = parseVersionsEnv(readFileSync(sourceFile('versions.env'), 'utf8'));
  return {
    kubernetes: env.KWC_KUBE_VERSION ?? pinned.kubernetes,
    etcd: env.KWC_ETCD_VERSION ?? pinned.etcd,
    crictl: env.KWC_CRICTL_VERSION ?? pinned.crictl,
  };
}

export function binaryCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KWC_BIN_CACHE ?? join(repoRoot, '.cache', 'bin');
}

/** Where build-binaries.sh puts (or has put) the binaries of the pinned versions. */
export function binaryPaths(env: NodeJS.ProcessEnv = process.env): ControlPlaneBinaries {
  const versions = controlPlaneVersions(env);
  const cache = binaryCacheDir(env);
  const kubeDir = join(cache, `kubernetes-${versions.kubernetes}`);
  return {
    kubeApiserver: join(kubeDir, 'kube-apiserver'),
    kubeControllerManager: join(kubeDir, 'kube-controller-manager'),
    kubeScheduler: join(kubeDir, 'kube-scheduler'),
    kubelet: join(kubeDir, 'kubelet'),
    kubectl: join(kubeDir, 'kubectl'),
    etcd: join(cache, `etcd-${versions.etcd}`, 'etcd'),
    crictl: join(cache, `cri-tools-${versions.crictl}`, 'crictl'),
    versions,
  };
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function binariesPresent(binaries: ControlPlaneBinaries): boolean {
  return [
    binaries.kubeApiserver,
    binaries.kubeControllerManager,
    binaries.kubeScheduler,
    binaries.kubelet,
    binaries.kubectl,
    binaries.etcd,
    binaries.crictl,
  ].every(isExecutable);
}

/**
 * Returns the cached binaries, building them first when absent. The build
 * script's progress goes to `progress` (stderr by default) line by line.
 */
export async function ensureBinaries(
  options: { env?: NodeJS.ProcessEnv; progress?: NodeJS.WritableStream } = {},
): Promise<ControlPlaneBinaries> {
  const env = options.env ?? process.env;
  const binaries = binaryPaths(env);
  if (binariesPresent(binaries)) return binaries;
  await runBuildScript([], env, options.progress ?? process.stderr);
  if (!binariesPresent(binaries)) {
    throw new Error(`build-binaries.sh succeeded but ${JSON.stringify(binaries)} are not all executable`);
  }
  return binaries;
}

/** Runs build-binaries.sh with its progress copied to `progress` line by line. */
function runBuildScript(args: readonly string[], env: NodeJS.ProcessEnv, progress: NodeJS.WritableStream): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    const child = spawn('bash', [sourceFile('build-binaries.sh'), ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(progress, { end: false });
    child.stderr.pipe(progress, { end: false });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${['build-binaries.sh', ...args].join(' ')} failed (${signal ?? `exit code ${String(code)}`}); see its output above`));
    });
  });
}

/** The pinned helm version (HELM_VERSION in versions.env, or KWC_HELM_VERSION). */
export function helmVersion(env: NodeJS.ProcessEnv = process.env): string {
  const pinned = clusterVersionsFile().get('HELM_VERSION');
  if (pinned === undefined) throw new Error('versions.env must set HELM_VERSION');
  return env.KWC_HELM_VERSION ?? pinned;
}

/** Where build-binaries.sh puts (or has put) helm. */
export function helmPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(binaryCacheDir(env), `helm-${helmVersion(env)}`, 'helm');
}

/**
 * The cached helm, built first when absent (about a minute with a warm Go
 * module cache). Built apart from the cluster's binaries: only the chart
 * tests need it.
 */
export async function ensureHelm(options: { env?: NodeJS.ProcessEnv; progress?: NodeJS.WritableStream } = {}): Promise<string> {
  const env = options.env ?? process.env;
  const path = helmPath(env);
  if (isExecutable(path)) return path;
  await runBuildScript(['helm'], env, options.progress ?? process.stderr);
  if (!isExecutable(path)) throw new Error(`build-binaries.sh helm succeeded but ${path} is not executable`);
  return path;
}
