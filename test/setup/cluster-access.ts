/**
 * What a test file in the "cluster" project needs to talk to the cluster that
 * test/setup/cluster.ts started (or was pointed at).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';

export function kubeconfigPath(): string {
  return inject('kubeconfigPath');
}

export function testKubeConfig(): KubeConfig {
  return loadKubeConfig(kubeconfigPath());
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the version-matched kubectl against the test cluster. Never throws on
 * a non-zero exit: tests assert on the code and the message themselves.
 */
export function kubectl(args: readonly string[], options: { stdin?: string; as?: string } = {}): Promise<KubectlResult> {
  const fullArgs = options.as !== undefined ? [...args, `--as=${options.as}`] : [...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      inject('kubectlPath'),
      fullArgs,
      { env: { ...process.env, KUBECONFIG: kubeconfigPath() }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}

/** A fresh namespace per test file, since tests share one cluster and nothing garbage-collects. */
export async function createTestNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  await testKubeConfig().makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}
