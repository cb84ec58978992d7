/**
 * The names of the variables a pool's `workerContainer.envFrom` gives the
 * worker container: the keys of the ConfigMaps and Secrets it names, with
 * their prefixes. Kubernetes lets any `env` entry win over `envFrom`, so a
 * run's environment from the backend would override them; the run Pod
 * builder drops message variables with these names instead.
 *
 * Read live with GET (only the objects the pool names, never a cache of all
 * Secrets), when a schedule arrives.
 *
 * @module
 */
import type { V1EnvFromSource } from '@kubernetes/client-node';
import type { WorkerPoolSpec } from '../../api/types.js';
import { ignoreNotFound } from '../../runtime/errors.js';
import { resource, SECRETS, type KubeClient, type KubeObject } from '../../runtime/k8s-client.js';

interface ConfigMap extends KubeObject {
  readonly data?: Record<string, string>;
  readonly binaryData?: Record<string, string>;
}

export const CONFIGMAPS = resource<ConfigMap>('', 'v1', 'configmaps', 'ConfigMap');

/**
 * @returns the variable names; a source that does not exist adds none (the
 *   Pod would not start with a missing non-optional source anyway)
 */
export async function envFromNames(client: KubeClient, namespace: string, spec: WorkerPoolSpec): Promise<string[]> {
  const sources = (spec.pod?.workerContainer?.envFrom ?? []) as unknown as readonly V1EnvFromSource[];
  const names: string[] = [];
  for (const source of sources) {
    const prefix = source.prefix ?? '';
    let keys: string[] = [];
    if (source.configMapRef?.name !== undefined) {
      const cm = await ignoreNotFound(client.get(CONFIGMAPS, namespace, source.configMapRef.name));
      keys = [...Object.keys(cm?.data ?? {}), ...Object.keys(cm?.binaryData ?? {})];
    } else if (source.secretRef?.name !== undefined) {
      const secret = await ignoreNotFound(client.get(SECRETS, namespace, source.secretRef.name));
      keys = Object.keys(secret?.data ?? {});
    }
    names.push(...keys.map((k) => `${prefix}${k}`));
  }
  return names;
}
