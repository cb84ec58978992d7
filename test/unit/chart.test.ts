/**
 * The Helm chart (dist/chart) with the real helm binary: it lints, its
 * default rendering is dist/manifests.yaml, every setting renders what the
 * construct synthesizes for the same props (src/chart/values.ts maps them),
 * and bad values are refused naming the value.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { WorkerPoolController } from '../../constructs/index.js';
import { ensureHelm, repoRoot } from '../../src/cluster/binaries.js';
import { defaultValues, propsFromValues, VALUES } from '../../src/chart/values.js';
import { CHART, chartValues, helm, helmOk, KUBE_VERSION, parseObjects, renderChart, valuesFile } from '../support/helm.js';
import { synthController, type ManifestObject } from '../support/synth.js';

beforeAll(async () => {
  await ensureHelm();
}, 600_000);

const key = (o: ManifestObject): string => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;

function byKey(objects: readonly ManifestObject[]): Map<string, ManifestObject> {
  const map = new Map<string, ManifestObject>();
  for (const o of objects) {
    if (map.has(key(o))) throw new Error(`${key(o)} twice`);
    map.set(key(o), o);
  }
  return map;
}

/** Same objects, each field for field (key order aside). */
function expectSameObjects(actual: readonly ManifestObject[], expected: readonly ManifestObject[]): void {
  const a = byKey(actual);
  const e = byKey(expected);
  expect([...a.keys()].sort()).toEqual([...e.keys()].sort());
  for (const [k, object] of e) expect(a.get(k), k).toEqual(JSON.parse(JSON.stringify(object)));
}

describe('the chart', () => {
  test('helm lint --strict passes', async () => {
    const out = await helmOk(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION]);
    expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  test('with default values renders dist/manifests.yaml object by object: all but the Namespace (--create-namespace makes it), managed by Helm', async () => {
    const rendered = await renderChart({}, { name: 'kube-workerpool-controller', namespace: 'spacelift-worker-controller-system' });
    const dist = parseObjects(readFileSync(join(repoRoot, 'dist', 'manifests.yaml'), 'utf8'));
    expect(dist.map((o) => o.kind)).toContain('Namespace');
    const expected = dist
      .filter((o) => o.kind !== 'Namespace')
      .map((o) => JSON.parse(JSON.stringify(o).replaceAll('"app.kubernetes.io/managed-by":"kubectl"', '"app.kubernetes.io/managed-by":"Helm"')) as ManifestObject);
    expectSameObjects(rendered, expected);
    expect(rendered.length).toBe(dist.length - 1);
  });

  test('values.yaml holds every value with its default, and the README describes each', () => {
    expect(parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'))).toEqual(defaultValues());
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    for (const v of VALUES) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${v.path}\` |`));
      expect(row, v.path).toBeDefined();
      const [, type, defaults, description, prop] = (row ?? '').split(' | ');
      expect([type, defaults, prop?.replace(/ \|$/, '')], v.path).toEqual([v.type, `\`${JSON.stringify(v.default)}\``, `\`${v.prop}\``]);
      expect(description?.length, v.path).toBeGreaterThan(10);
    }
    for (const required of ['image.repository', 'image.tag', 'image.pullPolicy', 'imagePullSecrets', 'namespaces', 'replicaCount', 'leaderElection', 'resources', 'nodeSelector', 'tolerations', 'affinity', 'priorityClassName', 'podAnnotations', 'podLabels', 'logLevel', 'logFormat', 'extraArgs', 'metrics.enabled', 'metrics.secure', 'metrics.port', 'metrics.certSecretName', 'serviceMonitor.enabled', 'crds.install', 'crds.keep', 'dashboards.enabled']) {
      expect(VALUES.map((v) => v.path)).toContain(required);
    }
  });
});

describe('every setting renders what the construct synthesizes with the same props', () => {
  const release = { name: 'platform', namespace: 'ops' };
  test.each<[string, Record<string, unknown>]>([
    ['defaults', {}],
    [
      'namespaced, two replicas, image, pull secrets, logs, extra flags, labels, annotations',
      {
        namespaces: ['team-a', 'team-b'],
        replicaCount: 2,
        image: { repository: 'registry.example.com/kwc', tag: '1.2.3', pullPolicy: 'Always' },
        imagePullSecrets: [{ name: 'regcred' }],
        logLevel: 'debug',
        logFormat: 'text',
        extraArgs: ['--stuck-pod-grace=10m', '--leader-elect-lease-duration=30s'],
        commonLabels: { team: 'platform' },
        podLabels: { tier: 'ops' },
        podAnnotations: { 'example.com/scrape': 'false' },
      },
    ],
    ['metrics off, no leader election, no admission policy, no CRDs', { metrics: { enabled: false }, leaderElection: false, admissionPolicy: { enabled: false }, crds: { install: false } }],
    [
      'plain HTTP metrics on another port, ServiceMonitor, dashboard elsewhere, CRDs not kept',
      {
        metrics: { secure: false, port: 9090 },
        healthProbePort: 9091,
        serviceMonitor: { enabled: true, interval: '1m', labels: { release: 'prometheus' } },
        dashboards: { enabled: true, namespace: 'monitoring', annotations: { grafana_folder: 'CI' } },
        crds: { keep: false },
      },
    ],
    [
      'a metrics certificate, secure ServiceMonitor, resources, scheduling, a digest, another name',
      {
        name: 'kwc-b',
        image: { digest: `sha256:${'ab'.repeat(32)}` },
        metrics: { certSecretName: 'metrics-tls' },
        serviceMonitor: { enabled: true },
        dashboards: { enabled: true, label: 'grafana.example.com/dashboard', labelValue: 'true' },
        resources: { requests: { 'ephemeral-storage': '1Gi' }, limits: { cpu: '2', memory: null } },
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' }],
        affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'kwc-b' } }, matchLabelKeys: ['pod-template-hash'] } }] } },
        priorityClassName: 'system-cluster-critical',
      },
    ],
  ])('%s', async (_title, values) => {
    const rendered = await renderChart(values, release);
    const synthesized = synthController(propsFromValues(chartValues(values), release));
    expectSameObjects(rendered, synthesized);
  });

  test('namespaces: a Role and RoleBinding in each, no manager ClusterRole, and the flag', async () => {
    const rendered = await renderChart({ namespaces: ['team-a', 'team-b'] }, release);
    const kinds = rendered.filter((o) => o.metadata.name === 'kube-workerpool-controller-manager').map(key);
    expect(kinds.sort()).toEqual(['Role team-a/kube-workerpool-controller-manager', 'Role team-b/kube-workerpool-controller-manager', 'RoleBinding team-a/kube-workerpool-controller-manager', 'RoleBinding team-b/kube-workerpool-controller-manager']);
    const deployment = rendered.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    expect(deployment.spec.template.spec.containers[0]?.args).toContain('--namespaces=team-a,team-b');
  });

  test('the ServiceMonitor selects the metrics Service and scrapes its port', async () => {
    const rendered = await renderChart({ serviceMonitor: { enabled: true } }, release);
    const monitor = rendered.find((o) => o.kind === 'ServiceMonitor') as unknown as { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: unknown; endpoints: { port: string; scheme: string }[] } };
    const svc = rendered.find((o) => o.kind === 'Service') as unknown as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
    expect(svc.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ['ops'] });
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: svc.spec.ports[0]?.name, scheme: 'https' });
  });
});

describe('bad values', () => {
  async function refusal(values: unknown): Promise<string> {
    const result = await helm(['template', 'kwc', CHART, '--kube-version', KUBE_VERSION, '-f', valuesFile(values)]);
    expect(result.code, result.stdout).not.toBe(0);
    return result.stderr;
  }

  test('replicaCount: -1 is refused by the schema, naming the value', async () => {
    const message = await refusal({ replicaCount: -1 });
    expect(message).toContain("values don't meet the specifications of the schema");
    expect(message).toMatch(/at '\/replicaCount': minimum: got -1, want 1/);
  });

  test('namespaces: "a" is refused by the schema, naming the value and what was expected', async () => {
    const message = await refusal({ namespaces: 'a' });
    expect(message).toContain("values don't meet the specifications of the schema");
    expect(message).toContain("at '/namespaces': 'a' does not match pattern '^expected a list of namespace names, not a string$'");
    expect(message).toContain("at '/namespaces': got string, want array");
  });

  test.each<[unknown, RegExp]>([
    [{ namespaces: ['Team_A'] }, /at '\/namespaces\/0': 'Team_A' does not match pattern/],
    [{ replicaCounts: 2 }, /additional properties 'replicaCounts' not allowed/],
    [{ image: { pullPolicy: 'Sometimes' } }, /at '\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/],
    [{ metrics: { port: 70000 } }, /at '\/metrics\/port': maximum: got 70,?000, want 65,?535/],
    [{ logLevel: 'verbose' }, /at '\/logLevel': value must be one of 'debug', 'info', 'warn', 'error'/],
    [{ extraArgs: ['stuck-pod-grace=1m'] }, /at '\/extraArgs\/0': 'stuck-pod-grace=1m' does not match pattern/],
    [{ commonLabels: { 'app.kubernetes.io/name': 'x' } }, /at '\/commonLabels'/],
  ])('%j is refused by the schema', async (values, message) => {
    expect(await refusal(values)).toMatch(message);
  });

  test.each<[Record<string, unknown>, string]>([
    [{ replicaCount: 2, leaderElection: false }, 'replicaCount is 2 but leaderElection is false'],
    [{ metrics: { secure: false, certSecretName: 'tls' } }, 'metrics.certSecretName is "tls" but needs the secure metrics endpoint'],
    [{ metrics: { port: 8081 } }, 'metrics.port and healthProbePort must differ, both are 8081'],
    [{ metrics: { enabled: false }, serviceMonitor: { enabled: true } }, 'serviceMonitor.enabled needs metrics.enabled'],
  ])('settings that cannot work together stop the render as they stop the construct: %j', async (values, message) => {
    expect(await refusal(values)).toContain(message);
    expect(() => new WorkerPoolController(new Chart(Testing.app(), 't'), 'c', propsFromValues(chartValues(values), { name: 'kwc', namespace: 'ops' }))).toThrow();
  });

  test('the admission policy on a cluster older than 1.30 is refused with the way out', async () => {
    const result = await helm(['template', 'kwc', CHART, '--kube-version', '1.29.0']);
    expect(result.stderr).toContain('admissionPolicy.enabled needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy), this cluster is v1.29.0: set admissionPolicy.enabled=false');
    expect((await helm(['template', 'kwc', CHART, '--kube-version', '1.29.0', '--set', 'admissionPolicy.enabled=false'])).code).toBe(0);
  });
});
