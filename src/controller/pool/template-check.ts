/**
 * The run Pod template of a pool, checked when the pool's spec changes: the
 * Pod a run would get is built and sent to the API server as a dry run, so a
 * bad volume, affinity or container override is reported on the pool
 * (condition PodTemplateValid, Warning event PodTemplateInvalid) before a run
 * fails on it. The CRD keeps embedded Kubernetes objects whole, so this is
 * where they are validated.
 */
import { PoolCondition } from '../../api/conditions.js';
import { MESSAGE_VERSION } from '../../protocol/index.js';
import type { WorkerPoolObject } from '../../api/types.js';
import { findCondition } from '../../runtime/conditions.js';
import type { ControllerContext } from '../context.js';
import { buildRunPod, RunConfigError } from '../runs/run-pod.js';
import { describeApiError, isInvalid } from '../../runtime/errors.js';
import { PODS, type Pod } from '../../runtime/k8s-client.js';


/** Images for the check when the pool names none (the backend sends them with each run). */
const PLACEHOLDER_IMAGE = 'registry.invalid/placeholder:check';

export interface TemplateVerdict {
  readonly valid: boolean;
  readonly message: string;
}

/** Whether the pool's current generation still needs checking. */
export function templateCheckDue(pool: WorkerPoolObject): boolean {
  return findCondition(pool.status?.conditions, PoolCondition.PodTemplateValid)?.observedGeneration !== pool.metadata.generation;
}

export async function checkPodTemplate(ctx: ControllerContext, pool: WorkerPoolObject, poolId: string): Promise<TemplateVerdict> {
  const namespace = pool.metadata.namespace ?? 'default';
  let pod;
  try {
    pod = buildRunPod({
      // The images here are placeholders for the backend's: allowedRunnerImageHosts is the runs' business.
      pool: { name: pool.metadata.name ?? '', namespace, uid: pool.metadata.uid ?? '', spec: { ...pool.spec, allowedRunnerImageHosts: undefined }, poolId },
      worker: { name: `${pool.metadata.name ?? ''}-template-check`, uid: '00000000-0000-0000-0000-000000000000', workerId: 'template-check' },
      schedule: {
        type: 'schedule',
        version: MESSAGE_VERSION,
        runId: 'template-check',
        runnerImage: pool.spec.pod?.defaultRunnerImage ?? PLACEHOLDER_IMAGE,
        launcherImage: PLACEHOLDER_IMAGE,
        env: {},
        timeouts: {},
      },
    });
  } catch (err) {
    if (err instanceof RunConfigError) return { valid: false, message: err.message };
    throw err;
  }
  try {
    await ctx.client.create(PODS, namespace, pod as Pod, { dryRun: true });
    return { valid: true, message: 'a run Pod built from this pool passes the API server\'s validation (dry run)' };
  } catch (err) {
    if (isInvalid(err)) return { valid: false, message: `the API server refuses the run Pod this pool would create: ${describeApiError(err)}` };
    throw err;
  }
}
