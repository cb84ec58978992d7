/**
 * The WorkerPool CRD as installed by dist/manifests.yaml, seen through the
 * commands users run: what it accepts, what it refuses and how it says so,
 * `kubectl scale` and `kubectl get workerpools`.
 */
import { CustomObjectsApi } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTestNamespace, ensureInstalled, kubectl, kubectlOk, testKubeConfig } from '../setup/cluster-access.js';

const GROUP = 'workers.spacelift.io';
const VERSION = 'v1beta1';

let namespace = '';

beforeAll(async () => {
  await ensureInstalled();
  namespace = await createTestNamespace('install-workerpool');
});

/** `kubectl apply -f -` of a multi-document file, the way users apply YAML. */
function apply(objects: readonly object[], flags: readonly string[] = []): ReturnType<typeof kubectl> {
  const file = objects.map((object) => JSON.stringify(object)).join('\n---\n');
  return kubectl(['apply', ...flags, '-n', namespace, '-f', '-'], { stdin: file });
}

function workerPool(name: string, spec: Record<string, unknown>): object {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'WorkerPool', metadata: { name }, spec };
}

const credentials = {
  token: { secretKeyRef: { name: 'test-workerpool', key: 'token' } },
  privateKey: { secretKeyRef: { name: 'test-workerpool', key: 'privateKey' } },
};

async function storedSpec(name: string): Promise<Record<string, unknown>> {
  const pool = (await testKubeConfig()
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'workerpools', name })) as {
    spec: Record<string, unknown>;
  };
  return pool.spec;
}

describe('a WorkerPool the docs show', () => {
  it('is accepted together with its Secret (poolSize 2, token and privateKey secretKeyRefs)', async () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'test-workerpool' },
      type: 'Opaque',
      stringData: { token: 'eyJ2ZXJzaW9uIjoxfQ==', privateKey: 'LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==' },
    };
    const result = await apply([secret, workerPool('test-workerpool', { poolSize: 2, ...credentials })]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('workerpool.workers.spacelift.io/test-workerpool created');
    expect(await storedSpec('test-workerpool')).toMatchObject({ poolSize: 2, ...credentials });
  });

  it('accepts every spec.pod field of the documentation, and stores each as given', async () => {
    const container = (name: string): Record<string, unknown> => ({
      name,
      image: `registry.example.com/${name}:1`,
      env: [{ name: 'A', value: '1' }],
    });
    const tuning = {
      env: [{ name: 'SPACELIFT_LAUNCHER_LOGS_TIMEOUT', value: '30m' }],
      envFrom: [{ configMapRef: { name: 'proxy-settings' } }],
      volumeMounts: [{ name: 'policy', mountPath: '/opt/policy' }],
      resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
      securityContext: { runAsUser: 1983, allowPrivilegeEscalation: false },
      imagePullPolicy: 'IfNotPresent',
    };
    const pod = {
      activeDeadlineSeconds: 4200,
      terminationGracePeriodSeconds: 60,
      launcherImage: 'public.ecr.aws/spacelift/launcher:latest',
      defaultRunnerImage: 'public.ecr.aws/spacelift/runner-terraform:latest',
      customBinariesPath: '/opt/custom-bin',
      initContainer: tuning,
      grpcServerContainer: tuning,
      workerContainer: { ...tuning, env: [{ name: 'SPACELIFT_LAUNCHER_RUN_TIMEOUT', value: '70m' }] },
      customInitContainers: [container('fetch-tools')],
      additionalSidecarContainers: [{ ...container('docker'), securityContext: { privileged: true } }],
      workspaceVolume: { name: 'workspace', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } } } } },
      binariesCacheVolume: { name: 'binaries-cache', hostPath: { path: '/var/cache/spacelift' } },
      volumes: [{ name: 'policy', configMap: { name: 'init-policy' } }],
      serviceAccountName: 'runner',
      automountServiceAccountToken: false,
      securityContext: { runAsUser: 1983, runAsGroup: 1983, fsGroup: 1983 },
      imagePullSecrets: [{ name: 'registry-credentials' }],
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      nodeName: 'node-1',
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['runs'] }] }] } } },
      schedulerName: 'default-scheduler',
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'runs', effect: 'NoSchedule' }],
      hostAliases: [{ ip: '10.0.0.10', hostnames: ['git.internal'] }],
      dnsConfig: { nameservers: ['10.0.0.53'], options: [{ name: 'ndots', value: '2' }] },
      dnsPolicy: 'None',
      runtimeClassName: 'gvisor',
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { app: 'runs' } } }],
      labels: { team: 'platform' },
      annotations: { 'example.com/owner': 'platform' },
      shareProcessNamespace: true,
    };
    const result = await apply([workerPool('every-pod-field', { poolSize: 0, ...credentials, pod })]);
    expect(result.code, result.stderr).toBe(0);
    expect((await storedSpec('every-pod-field')).pod).toEqual(pod);
  });

  it('defaults poolSize to 1 when it is left out', async () => {
    const result = await apply([workerPool('default-size', { ...credentials })]);
    expect(result.code, result.stderr).toBe(0);
    expect((await storedSpec('default-size')).poolSize).toBe(1);
  });
});

describe('a bad WorkerPool', () => {
  it('with poolSize -1 is refused, naming spec.poolSize', async () => {
    const result = await apply([workerPool('negative', { poolSize: -1, ...credentials })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/spec\.poolSize.*greater than or equal to 0/);
  });

  it('with poolSize "lots" is refused, naming spec.poolSize and the expected type', async () => {
    const result = await apply([workerPool('lots', { poolSize: 'lots', ...credentials })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/spec\.poolSize.*must be of type integer/);
  });

  it('with a token but no privateKey is refused, naming both fields', async () => {
    const result = await apply([workerPool('half-credentials', { poolSize: 1, token: credentials.token })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('spec.token and spec.privateKey must be set together');
  });

  it('with an unknown field is refused by kubectl, which names the field', async () => {
    const result = await apply([workerPool('typo', { poolSzie: 3, ...credentials })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('unknown field "spec.poolSzie"');
  });

  it('with an unknown field is stored without it by clients that do not ask for strict validation', async () => {
    const result = await apply([workerPool('typo-lenient', { poolSzie: 3, ...credentials })], ['--validate=false']);
    expect(result.code, result.stderr).toBe(0);
    const spec = await storedSpec('typo-lenient');
    expect(spec).not.toHaveProperty('poolSzie');
    expect(spec.poolSize).toBe(1);
  });
});

/** Reads `kubectl get` table output into rows keyed by column header. */
function parseTable(output: string): Record<string, string>[] {
  const [header = '', ...lines] = output.trimEnd().split('\n');
  const starts = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], start: m.index }));
  return lines.map((line) =>
    Object.fromEntries(starts.map((col, i) => [col.name, line.slice(col.start, starts[i + 1]?.start ?? line.length).trim()])),
  );
}

describe('kubectl scale and kubectl get workerpools', () => {
  it('kubectl scale workerpools <name> --replicas=5 sets spec.poolSize to 5', async () => {
    expect((await apply([workerPool('scaled', { poolSize: 2, ...credentials })])).code).toBe(0);
    const result = await kubectl(['scale', 'workerpools', 'scaled', '--replicas=5', '-n', namespace]);
    expect(result.code, result.stderr).toBe(0);
    expect((await storedSpec('scaled')).poolSize).toBe(5);
  });

  it('shows DESIRED POOL SIZE and ACTUAL POOL SIZE from the status, empty until the controller reports', async () => {
    expect((await apply([workerPool('columns', { poolSize: 4, ...credentials })])).code).toBe(0);
    const before = parseTable(await kubectlOk(['get', 'workerpools', '-n', namespace]));
    expect(before.find((row) => row.NAME === 'columns')).toMatchObject({ 'DESIRED POOL SIZE': '', 'ACTUAL POOL SIZE': '' });

    // Plays the controller: status is only writable through its subresource.
    await testKubeConfig()
      .makeApiClient(CustomObjectsApi)
      .patchNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: 'workerpools',
        name: 'columns',
        body: [{ op: 'add', path: '/status', value: { desiredPoolSize: 4, actualPoolSize: 3 } }],
      });
    const after = parseTable(await kubectlOk(['get', 'workerpools', '-n', namespace]));
    expect(after.find((row) => row.NAME === 'columns')).toMatchObject({ 'DESIRED POOL SIZE': '4', 'ACTUAL POOL SIZE': '3' });
  });
});
