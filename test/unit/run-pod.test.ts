import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import { describe, expect, test } from 'vitest';
import type { WorkerPoolSpec } from '../../src/api/types.js';
import {
  MissingRunnerImageError,
  NameConflictError,
  RunConfigError,
  RunnerImageNotAllowedError,
  STANDARD_PATH,
  buildRunPod,
  runPodName,
  type RunPodInput,
} from '../../src/controller/runs/run-pod.js';
import { InvalidTimeoutError } from '../../src/controller/runs/run-timeouts.js';
import type { ScheduleMessage } from '../../src/protocol/messages.js';
import { MESSAGE_VERSION } from '../../src/protocol/version.js';

const RUN_ID = '01HZX3ABCDEFGHJKMNPQRSTVWX';
const WORKER_ID = '01hzx0workerid0000000000aa';

function schedule(over: Partial<ScheduleMessage> = {}): ScheduleMessage {
  return {
    type: 'schedule',
    version: MESSAGE_VERSION,
    runId: RUN_ID,
    runnerImage: 'public.ecr.aws/spacelift/runner-terraform:latest',
    launcherImage: 'public.ecr.aws/spacelift/launcher:v1.2.3',
    env: { TF_VAR_region: 'eu-west-1' },
    timeouts: {},
    ...over,
  };
}

function input(pod: Record<string, unknown> = {}, over: { spec?: Record<string, unknown>; schedule?: Partial<ScheduleMessage> } = {}): RunPodInput {
  return {
    pool: {
      name: 'pool-a',
      namespace: 'runs',
      uid: 'pool-uid',
      poolId: '01POOLID',
      spec: ({ poolSize: 1, ...over.spec, pod }) as WorkerPoolSpec,
    },
    worker: { name: `pool-a-${WORKER_ID}`, uid: 'worker-uid', workerId: WORKER_ID },
    schedule: schedule(over.schedule),
  };
}

function init(pod: V1Pod, name: string): V1Container {
  const c = pod.spec?.initContainers?.find((x) => x.name === name);
  if (!c) throw new Error(`no init container ${name}`);
  return c;
}
function main(pod: V1Pod, name = 'worker'): V1Container {
  const c = pod.spec?.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}
function env(c: V1Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}
function envNames(c: V1Container): string[] {
  return (c.env ?? []).map((e) => e.name);
}
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}

describe('metadata', () => {
  test('name, namespace, owner, finalizer', () => {
    const pod = buildRunPod(input());
    expect(runPodName(RUN_ID)).toBe('01hzx3abcdefghjkmnpqrstvwx-run-1');
    expect(pod.apiVersion).toBe('v1');
    expect(pod.kind).toBe('Pod');
    expect(pod.metadata?.name).toBe('01hzx3abcdefghjkmnpqrstvwx-run-1');
    expect(pod.metadata?.namespace).toBe('runs');
    expect(pod.metadata?.ownerReferences).toEqual([
      {
        apiVersion: 'workers.spacelift.io/v1beta1',
        kind: 'Worker',
        name: `pool-a-${WORKER_ID}`,
        uid: 'worker-uid',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(pod.metadata?.finalizers).toEqual(['workers.spacelift.io/report-run']);
  });

  test('the same message always builds the same Pod', () => {
    expect(buildRunPod(input({ labels: { a: 'b' } }))).toEqual(buildRunPod(input({ labels: { a: 'b' } })));
  });

  test('labels: ours, the run id unchanged, pool labels merged with ours winning', () => {
    const pod = buildRunPod(
      input({ labels: { team: 'infra', 'workers.spacelift.io/run-id': 'spoof', 'app.kubernetes.io/managed-by': 'me' } }),
    );
    expect(pod.metadata?.labels).toEqual({
      team: 'infra',
      'workers.spacelift.io/run-id': RUN_ID,
      'workers.spacelift.io/worker': WORKER_ID,
      'workers.spacelift.io/workerpool': '01POOLID',
      'app.kubernetes.io/managed-by': 'kube-workerpool-controller',
    });
  });

  test('annotations: the disruption guards, pool annotations and the Worker name', () => {
    const pod = buildRunPod(input({ annotations: { team: 'a' } }));
    expect(pod.metadata?.annotations).toEqual({
      'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false',
      'karpenter.sh/do-not-disrupt': 'true',
      team: 'a',
      'workers.spacelift.io/worker-name': `pool-a-${WORKER_ID}`,
    });
  });

  test('annotations: a pool may lift the disruption guards', () => {
    const pod = buildRunPod(input({ annotations: { 'karpenter.sh/do-not-disrupt': 'false', 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true' } }));
    expect(pod.metadata?.annotations?.['karpenter.sh/do-not-disrupt']).toBe('false');
    expect(pod.metadata?.annotations?.['cluster-autoscaler.kubernetes.io/safe-to-evict']).toBe('true');
  });
});

describe('containers', () => {
  test('order: custom init, init, launcher-grpc, sidecars; worker is the only main container', () => {
    const pod = buildRunPod(
      input({
        customInitContainers: [{ name: 'fetch-policy', image: 'busybox' }],
        additionalSidecarContainers: [{ name: 'dind', image: 'docker:dind', securityContext: { privileged: true } }],
      }),
    );
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['fetch-policy', 'init', 'launcher-grpc', 'dind']);
    expect(pod.spec?.containers.map((c) => c.name)).toEqual(['worker']);
    expect(pod.spec?.restartPolicy).toBe('Never');
  });

  test('launcher-grpc and sidecars are native sidecars; init and custom init are not', () => {
    const pod = buildRunPod(
      input({
        customInitContainers: [{ name: 'fetch-policy', image: 'busybox' }],
        additionalSidecarContainers: [{ name: 'dind', image: 'docker:dind', restartPolicy: 'Never' }],
      }),
    );
    expect(init(pod, 'launcher-grpc').restartPolicy).toBe('Always');
    expect(init(pod, 'dind').restartPolicy).toBe('Always');
    expect(init(pod, 'init').restartPolicy).toBeUndefined();
    expect(init(pod, 'fetch-policy').restartPolicy).toBeUndefined();
  });

  test('user containers are kept as given, without our security defaults', () => {
    const dind = { name: 'dind', image: 'docker:dind', securityContext: { privileged: true, runAsUser: 0, runAsNonRoot: false } };
    const pod = buildRunPod(input({ additionalSidecarContainers: [dind], customInitContainers: [{ name: 'c', image: 'busybox' }] }));
    expect(init(pod, 'dind')).toEqual({ ...dind, restartPolicy: 'Always' });
    expect(init(pod, 'c')).toEqual({ name: 'c', image: 'busybox' });
  });

  test('no command is invented for any container', () => {
    const pod = buildRunPod(input());
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      expect(c.command).toBeUndefined();
      expect(c.args).toBeUndefined();
    }
  });

  test('images: launcher from the message, runner from the message', () => {
    const pod = buildRunPod(input({ defaultRunnerImage: 'ghcr.io/me/default:1' }));
    expect(init(pod, 'init').image).toBe('public.ecr.aws/spacelift/launcher:v1.2.3');
    expect(init(pod, 'launcher-grpc').image).toBe('public.ecr.aws/spacelift/launcher:v1.2.3');
    expect(main(pod).image).toBe('public.ecr.aws/spacelift/runner-terraform:latest');
  });

  test('images: the pool pins the launcher; the default runner applies when the message has none', () => {
    const pod = buildRunPod(
      input({ launcherImage: 'ghcr.io/me/launcher:pinned', defaultRunnerImage: 'ghcr.io/me/default:1' }, { schedule: { runnerImage: '' } }),
    );
    expect(init(pod, 'init').image).toBe('ghcr.io/me/launcher:pinned');
    expect(init(pod, 'launcher-grpc').image).toBe('ghcr.io/me/launcher:pinned');
    expect(main(pod).image).toBe('ghcr.io/me/default:1');
  });

  test('no runner image anywhere: typed error', () => {
    const e = thrown(() => buildRunPod(input({}, { schedule: { runnerImage: '' } })));
    expect(e).toBeInstanceOf(MissingRunnerImageError);
    expect(e).toBeInstanceOf(RunConfigError);
    expect((e as Error).message).toContain('defaultRunnerImage');
  });

  test('a runner image from a disallowed host: typed error naming the host', () => {
    const e = thrown(() => buildRunPod(input({}, { spec: { allowedRunnerImageHosts: ['ghcr.io', 'public.ecr.aws'] }, schedule: { runnerImage: 'evil.example.com/x:1' } })));
    expect(e).toBeInstanceOf(RunnerImageNotAllowedError);
    expect((e as Error).message).toContain('"evil.example.com"');
    expect((e as Error).message).toContain('ghcr.io');
    expect(() => buildRunPod(input({}, { spec: { allowedRunnerImageHosts: ['public.ecr.aws'] } }))).not.toThrow();
  });

  test('allowedRunnerImageHosts applies to the launcher image from the message too', () => {
    const e = thrown(() =>
      buildRunPod(input({}, { spec: { allowedRunnerImageHosts: ['public.ecr.aws'] }, schedule: { launcherImage: 'evil.example.com/launcher:1' } })),
    );
    expect(e).toBeInstanceOf(RunnerImageNotAllowedError);
    expect((e as Error).message).toBe(
      'launcher image "evil.example.com/launcher:1" is from registry host "evil.example.com", which is not in the pool\'s allowedRunnerImageHosts (public.ecr.aws)',
    );
  });

  test("images the pool's own spec sets are the pool owner's choice, not checked", () => {
    const pod = buildRunPod(
      input(
        { defaultRunnerImage: 'internal.example.com/runner:1', launcherImage: 'internal.example.com/launcher:1' },
        { spec: { allowedRunnerImageHosts: ['public.ecr.aws'] }, schedule: { runnerImage: '', launcherImage: 'evil.example.com/launcher:1' } },
      ),
    );
    expect(main(pod).image).toBe('internal.example.com/runner:1');
    expect(init(pod, 'init').image).toBe('internal.example.com/launcher:1');
  });

  test('the message cannot set PATH, LD_PRELOAD or proxy variables unless the pool allows them, nor names from envFrom', () => {
    const message = { PATH: '/tmp/evil', ld_preload: '/tmp/evil.so', LD_LIBRARY_PATH: '/tmp', HTTPS_PROXY: 'http://evil:3128', https_proxy: 'http://evil:3128', NO_PROXY: '*', FROM_SECRET: 'override', TF_LOG: 'debug' };
    const pod = buildRunPod({ ...input({ workerContainer: { envFrom: [{ secretRef: { name: 'creds' } }] } }, { schedule: { env: message } }), envFromNames: ['FROM_SECRET'] });
    const e = env(main(pod));
    for (const name of ['PATH', 'ld_preload', 'LD_LIBRARY_PATH', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'FROM_SECRET']) expect(e[name], name).toBeUndefined();
    expect(e.TF_LOG).toBe('debug');
    const allowed = buildRunPod(input({}, { spec: { allowedRunEnvVars: ['https_proxy', 'NO_PROXY'] }, schedule: { env: message } }));
    expect(env(main(allowed))).toMatchObject({ HTTPS_PROXY: 'http://evil:3128', https_proxy: 'http://evil:3128', NO_PROXY: '*' });
    expect(env(main(allowed)).PATH).toBeUndefined();
  });

  test('container and volume names that clash are refused before the API does', () => {
    const e = thrown(() => buildRunPod(input({ customInitContainers: [{ name: 'init', image: 'x' }] })));
    expect(e).toBeInstanceOf(NameConflictError);
    expect((e as RunConfigError).field).toBe('spec.pod.customInitContainers[0].name');
    const e2 = thrown(() =>
      buildRunPod(input({ customInitContainers: [{ name: 'a', image: 'x' }], additionalSidecarContainers: [{ name: 'b', image: 'x' }, { name: 'a', image: 'x' }] })),
    );
    expect((e2 as RunConfigError).field).toBe('spec.pod.additionalSidecarContainers[1].name');
    const e3 = thrown(() => buildRunPod(input({ volumes: [{ name: 'workspace', emptyDir: {} }] })));
    expect((e3 as RunConfigError).field).toBe('spec.pod.volumes[0].name');
  });
});

describe('volumes', () => {
  test('defaults: workspace and binaries cache are emptyDirs mounted at the documented paths', () => {
    const pod = buildRunPod(input());
    expect(pod.spec?.volumes).toEqual([
      { name: 'workspace', emptyDir: {} },
      { name: 'binaries-cache', emptyDir: {} },
    ]);
    const ws = { name: 'workspace', mountPath: '/opt/spacelift/workspace' };
    const cache = { name: 'binaries-cache', mountPath: '/opt/spacelift/binaries_cache' };
    expect(init(pod, 'init').volumeMounts).toEqual([ws, cache]);
    expect(init(pod, 'launcher-grpc').volumeMounts).toEqual([ws]);
    expect(main(pod).volumeMounts).toEqual([ws, cache]);
  });

  test('pool volumes replace the sources, keeping our names; extra volumes and mounts are appended', () => {
    const pod = buildRunPod(
      input({
        workspaceVolume: { name: 'ignored', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'] } } } },
        binariesCacheVolume: { persistentVolumeClaim: { claimName: 'tool-cache' } },
        volumes: [{ name: 'policy', configMap: { name: 'init-policy' } }],
        initContainer: { volumeMounts: [{ name: 'policy', mountPath: '/opt/policy' }] },
        workerContainer: { volumeMounts: [{ name: 'policy', mountPath: '/etc/p', readOnly: true }] },
      }),
    );
    expect(pod.spec?.volumes).toEqual([
      { name: 'workspace', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'] } } } },
      { name: 'binaries-cache', persistentVolumeClaim: { claimName: 'tool-cache' } },
      { name: 'policy', configMap: { name: 'init-policy' } },
    ]);
    expect(init(pod, 'init').volumeMounts?.map((m) => m.mountPath)).toEqual([
      '/opt/spacelift/workspace',
      '/opt/spacelift/binaries_cache',
      '/opt/policy',
    ]);
    expect(main(pod).volumeMounts?.at(-1)).toEqual({ name: 'policy', mountPath: '/etc/p', readOnly: true });
    expect(init(pod, 'launcher-grpc').volumeMounts).toHaveLength(1);
  });
});

describe('environment', () => {
  test('our variables on init, launcher-grpc and worker', () => {
    const pod = buildRunPod(input());
    const ours = {
      SPACELIFT_RUN_ID: RUN_ID,
      SPACELIFT_WORKER_ID: WORKER_ID,
      SPACELIFT_POOL_ID: '01POOLID',
      SPACELIFT_WORKSPACE_PATH: '/opt/spacelift/workspace',
      SPACELIFT_BINARIES_CACHE_PATH: '/opt/spacelift/binaries_cache',
    };
    expect(env(init(pod, 'init'))).toEqual(ours);
    expect(env(init(pod, 'launcher-grpc'))).toEqual(ours);
    expect(env(main(pod))).toEqual({ ...ours, TF_VAR_region: 'eu-west-1' });
  });

  test("the message's env is only on worker", () => {
    const pod = buildRunPod(input());
    expect(env(init(pod, 'init')).TF_VAR_region).toBeUndefined();
    expect(env(main(pod)).TF_VAR_region).toBe('eu-west-1');
  });

  test('pool env is appended and overrides ours, without duplicates', () => {
    const pod = buildRunPod(
      input({
        initContainer: { env: [{ name: 'GIT_AGENT', value: 'vcs-agent:443' }, { name: 'SPACELIFT_WORKSPACE_PATH', value: '/elsewhere' }] },
        grpcServerContainer: { env: [{ name: 'GRPC_LOG', value: 'debug' }] },
      }),
    );
    const i = init(pod, 'init');
    expect(envNames(i).at(-2)).toBe('GIT_AGENT');
    expect(envNames(i).at(-1)).toBe('SPACELIFT_WORKSPACE_PATH');
    expect(env(i).SPACELIFT_WORKSPACE_PATH).toBe('/elsewhere');
    expect(envNames(i).filter((n) => n === 'SPACELIFT_WORKSPACE_PATH')).toHaveLength(1);
    expect(env(init(pod, 'launcher-grpc')).GRPC_LOG).toBe('debug');
  });

  test('precedence on worker: pool env > controller > message', () => {
    const pod = buildRunPod(
      input(
        {
          customBinariesPath: '/opt/tools/bin',
          activeDeadlineSeconds: 4200,
          workerContainer: {
            env: [
              { name: 'HTTPS_PROXY', value: 'http://proxy:3128' },
              { name: 'AWS_ROLE_ARN', valueFrom: { secretKeyRef: { name: 's', key: 'role' } } },
            ],
          },
        },
        {
          schedule: {
            env: {
              HTTPS_PROXY: 'http://attacker',
              AWS_ROLE_ARN: 'arn:evil',
              SPACELIFT_RUN_ID: 'other-run',
              PATH: '/tmp/evil',
              SPACELIFT_LAUNCHER_RUN_TIMEOUT: '999h',
              SPACELIFT_LAUNCHER_LOGS_TIMEOUT: '999h',
              STACK_VAR: 'kept',
            },
          },
        },
      ),
    );
    const w = main(pod);
    const e = env(w);
    expect(e.HTTPS_PROXY).toBe('http://proxy:3128');
    expect(w.env?.find((x) => x.name === 'AWS_ROLE_ARN')).toEqual({
      name: 'AWS_ROLE_ARN',
      valueFrom: { secretKeyRef: { name: 's', key: 'role' } },
    });
    expect(e.SPACELIFT_RUN_ID).toBe(RUN_ID);
    expect(e.PATH).toBe(`/opt/tools/bin:${STANDARD_PATH}`);
    expect(e.SPACELIFT_LAUNCHER_RUN_TIMEOUT).toBe('1h5m0s');
    expect(e.SPACELIFT_LAUNCHER_LOGS_TIMEOUT).toBeUndefined();
    expect(e.STACK_VAR).toBe('kept');
    const names = envNames(w);
    expect(new Set(names).size).toBe(names.length);
    // Pool entries come last, so they can refer to everything else.
    expect(names.slice(-2)).toEqual(['HTTPS_PROXY', 'AWS_ROLE_ARN']);
  });

  test('customBinariesPath puts the directory first on PATH, only on worker', () => {
    const pod = buildRunPod(input({ customBinariesPath: '/opt/bin' }));
    expect(env(main(pod)).PATH).toBe('/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(env(init(pod, 'init')).PATH).toBeUndefined();
    expect(env(main(buildRunPod(input()))).PATH).toBeUndefined();
  });

  test('envFrom passes through per container', () => {
    const pod = buildRunPod(input({ workerContainer: { envFrom: [{ secretRef: { name: 'creds' } }] } }));
    expect(main(pod).envFrom).toEqual([{ secretRef: { name: 'creds' } }]);
    expect(init(pod, 'init').envFrom).toBeUndefined();
  });
});

describe('timeouts', () => {
  test('docs example: deadline on the pod, derived run timeout on worker', () => {
    const pod = buildRunPod(input({ activeDeadlineSeconds: 4200 }));
    expect(pod.spec?.activeDeadlineSeconds).toBe(4200);
    expect(env(main(pod)).SPACELIFT_LAUNCHER_RUN_TIMEOUT).toBe('1h5m0s');
  });

  test('pool run timeout variable: kept verbatim once, and the deadline derived', () => {
    const pod = buildRunPod(input({ workerContainer: { env: [{ name: 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', value: '70m' }] } }));
    expect(pod.spec?.activeDeadlineSeconds).toBe(4500);
    const w = main(pod);
    expect(w.env?.filter((e: V1EnvVar) => e.name === 'SPACELIFT_LAUNCHER_RUN_TIMEOUT')).toEqual([
      { name: 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', value: '70m' },
    ]);
  });

  test('message timeouts', () => {
    const pod = buildRunPod(input({}, { schedule: { timeouts: { runSeconds: 1800, logsSeconds: 600 } } }));
    expect(pod.spec?.activeDeadlineSeconds).toBe(2100);
    expect(env(main(pod)).SPACELIFT_LAUNCHER_RUN_TIMEOUT).toBe('30m0s');
    expect(env(main(pod)).SPACELIFT_LAUNCHER_LOGS_TIMEOUT).toBe('10m0s');
    expect(env(init(pod, 'init')).SPACELIFT_LAUNCHER_RUN_TIMEOUT).toBeUndefined();
  });

  test('no timeouts anywhere: no deadline', () => {
    const pod = buildRunPod(input());
    expect(pod.spec?.activeDeadlineSeconds).toBeUndefined();
    expect(env(main(pod)).SPACELIFT_LAUNCHER_RUN_TIMEOUT).toBeUndefined();
  });

  test('an invalid pool value fails the build with a typed error', () => {
    const e = thrown(() => buildRunPod(input({ workerContainer: { env: [{ name: 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', value: 'soon' }] } })));
    expect(e).toBeInstanceOf(InvalidTimeoutError);
    expect(e).toBeInstanceOf(RunConfigError);
    expect((e as Error).message).toContain('"soon"');
  });
});

describe('security', () => {
  test('defaults: UID/GID 1983, non-root, RuntimeDefault seccomp, no escalation, caps dropped, no token', () => {
    const pod = buildRunPod(input());
    expect(pod.spec?.securityContext).toEqual({
      runAsUser: 1983,
      runAsGroup: 1983,
      fsGroup: 1983,
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const c of [init(pod, 'init'), init(pod, 'launcher-grpc'), main(pod)]) {
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } });
    }
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
  });

  test('overrides replace the defaults as a whole', () => {
    const pod = buildRunPod(
      input({
        securityContext: { runAsUser: 2000, fsGroup: 2000 },
        workerContainer: { securityContext: { readOnlyRootFilesystem: true } },
        automountServiceAccountToken: true,
      }),
    );
    expect(pod.spec?.securityContext).toEqual({ runAsUser: 2000, fsGroup: 2000 });
    expect(main(pod).securityContext).toEqual({ readOnlyRootFilesystem: true });
    expect(init(pod, 'init').securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(pod.spec?.automountServiceAccountToken).toBe(true);
  });
});

describe('per-container overrides', () => {
  test('resources and imagePullPolicy, each on its own container', () => {
    const pod = buildRunPod(
      input({
        initContainer: { imagePullPolicy: 'Always', resources: { requests: { cpu: '100m' } } },
        grpcServerContainer: { imagePullPolicy: 'IfNotPresent', resources: { limits: { memory: '128Mi' } } },
        workerContainer: { imagePullPolicy: 'Never', resources: { requests: { cpu: 2, memory: '4Gi' }, limits: { memory: '4Gi' } } },
      }),
    );
    expect(init(pod, 'init').imagePullPolicy).toBe('Always');
    expect(init(pod, 'init').resources).toEqual({ requests: { cpu: '100m' } });
    expect(init(pod, 'launcher-grpc').imagePullPolicy).toBe('IfNotPresent');
    expect(init(pod, 'launcher-grpc').resources).toEqual({ limits: { memory: '128Mi' } });
    expect(main(pod).imagePullPolicy).toBe('Never');
    expect(main(pod).resources).toEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } });
  });

  test('no overrides: no resources or pull policy set', () => {
    const pod = buildRunPod(input());
    expect(main(pod).resources).toBeUndefined();
    expect(main(pod).imagePullPolicy).toBeUndefined();
  });

  test('cdk8s quantity wrappers are unwrapped', () => {
    const p = input();
    const spec = { pod: { workerContainer: { resources: { limits: { cpu: { value: 2 } } } } } };
    const pod = buildRunPod({ ...p, pool: { ...p.pool, spec: spec as unknown as RunPodInput['pool']['spec'] } });
    expect(main(pod).resources).toEqual({ limits: { cpu: '2' } });
  });
});

describe('pod-level fields', () => {
  const everything = {
    terminationGracePeriodSeconds: 120,
    serviceAccountName: 'runner',
    imagePullSecrets: [{ name: 'regcred' }],
    nodeSelector: { pool: 'runs' },
    nodeName: 'node-7',
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'k', operator: 'Exists' }] }] } } },
    schedulerName: 'my-scheduler',
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'runs', effect: 'NoSchedule' }],
    hostAliases: [{ ip: '10.0.0.1', hostnames: ['vcs.internal'] }],
    dnsConfig: { nameservers: ['1.1.1.1'], options: [{ name: 'ndots', value: '2' }] },
    dnsPolicy: 'None',
    runtimeClassName: 'gvisor',
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'ScheduleAnyway' }],
    shareProcessNamespace: true,
  };

  test.each(Object.keys(everything))('%s is applied as given', (field) => {
    const pod = buildRunPod(input(everything));
    expect((pod.spec as unknown as Record<string, unknown>)[field]).toEqual(everything[field as keyof typeof everything]);
  });

  test('absent fields stay absent', () => {
    const spec = buildRunPod(input()).spec as unknown as Record<string, unknown>;
    for (const field of Object.keys(everything)) expect(spec[field], field).toBeUndefined();
  });

  test('the Pod does not alias the spec it was built from', () => {
    const i = input(everything);
    const pod = buildRunPod(i);
    pod.spec?.tolerations?.push({ key: 'x' });
    (pod.spec?.nodeSelector as Record<string, string>).extra = 'y';
    expect(i.pool.spec.pod?.tolerations).toHaveLength(1);
    expect(i.pool.spec.pod?.nodeSelector).toEqual({ pool: 'runs' });
  });
});
