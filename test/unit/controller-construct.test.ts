import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { describe, expect, test } from 'vitest';
import { VERSION, WorkerPoolController, WorkerPoolControllerProps } from '../../constructs/index.js';
import { at, find, synthController } from '../support/synth.js';

interface ContainerJson {
  image: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  livenessProbe: unknown;
  readinessProbe: unknown;
}

function manager(props?: WorkerPoolControllerProps): ContainerJson {
  const deployment = find(synthController(props), 'Deployment', 'kube-workerpool-controller');
  return (at(deployment, 'spec.template.spec.containers') as ContainerJson[])[0];
}

describe('controller Deployment', () => {
  const objects = synthController();
  const deployment = find(objects, 'Deployment', 'kube-workerpool-controller');
  const container = manager();

  test('runs in the documented namespace with its own ServiceAccount', () => {
    expect(find(objects, 'Namespace', 'spacelift-worker-controller-system')).toBeDefined();
    expect(find(objects, 'ServiceAccount', 'kube-workerpool-controller').metadata.namespace).toBe('spacelift-worker-controller-system');
    expect(deployment.metadata.namespace).toBe('spacelift-worker-controller-system');
    expect(at(deployment, 'spec.template.spec.serviceAccountName')).toBe('kube-workerpool-controller');
  });

  test('passes the documented flags', () => {
    expect(container.args).toEqual([
      '--metrics-bind-address=:8443',
      '--metrics-secure=true',
      '--health-probe-bind-address=:8081',
      '--leader-elect',
      '--log-level=info',
      '--log-format=json',
    ]);
  });

  test('probes the health port', () => {
    expect(container.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'health' } });
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'health' } });
    expect(container.ports).toEqual([
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
      { name: 'metrics', containerPort: 8443, protocol: 'TCP' },
    ]);
  });

  test('is restricted: non-root, no privilege escalation, read-only root, no capabilities', () => {
    expect(at(deployment, 'spec.template.spec.securityContext')).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  test('requests resources and sets no CPU limit (scale-out is CPU-bound)', () => {
    expect(container.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  });

  test('every object carries the recommended labels, the CRDs the keep policy', () => {
    for (const o of objects) {
      expect(o.metadata.labels, `${o.kind} ${o.metadata.name}`).toMatchObject({
        'app.kubernetes.io/name': 'kube-workerpool-controller',
        'app.kubernetes.io/instance': 'kube-workerpool-controller',
        'app.kubernetes.io/version': '0.1.0',
        'app.kubernetes.io/component': expect.stringMatching(/^(controller|crd|admission-policy)$/),
        'app.kubernetes.io/part-of': 'kube-workerpool-controller',
        'app.kubernetes.io/managed-by': 'kubectl',
      });
    }
    expect(objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/component'] === 'crd').map((o) => at(o, 'metadata.annotations'))).toEqual([
      { 'helm.sh/resource-policy': 'keep' },
      { 'helm.sh/resource-policy': 'keep' },
    ]);
    expect(at(deployment, 'spec.template.metadata.labels')).toMatchObject({ 'app.kubernetes.io/version': '0.1.0', 'app.kubernetes.io/instance': 'kube-workerpool-controller' });
    // The selector is the one of earlier releases: a Deployment's selector cannot change.
    expect(at(deployment, 'spec.selector.matchLabels')).toEqual({ 'app.kubernetes.io/component': 'controller', 'app.kubernetes.io/name': 'kube-workerpool-controller' });
  });

  test('VERSION is the package version', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
    expect(container.image).toBe(`kube-workerpool-controller:${pkg.version}`);
  });

  test('a metrics Service points at the metrics port', () => {
    const service = find(objects, 'Service', 'kube-workerpool-controller-metrics');
    expect(at(service, 'spec.ports')).toEqual([{ name: 'https', port: 8443, targetPort: 'metrics', protocol: 'TCP' }]);
    expect(at(service, 'spec.selector')).toEqual(at(deployment, 'spec.selector.matchLabels'));
  });
});

describe('props', () => {
  test('image, replicas, metrics and resources are configurable', () => {
    const c = manager({ image: 'registry.example.com/kwc:1.2.3', metricsSecure: false, resources: { limits: { cpu: '2' } } });
    expect(c.image).toBe('registry.example.com/kwc:1.2.3');
    expect(c.args).toContain('--metrics-secure=false');
    expect(c.resources.limits).toEqual({ memory: '512Mi', cpu: '2' });
    // A key set to undefined drops the default's; other resources come through.
    expect(manager({ resources: { requests: { 'ephemeral-storage': '1Gi' }, limits: { memory: undefined } } }).resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '1Gi' },
    });
  });

  test('the Pod settings a Helm user has: pull secrets, scheduling, priority, annotations, labels, logs and extra flags', () => {
    const props: WorkerPoolControllerProps = {
      imagePullSecrets: ['regcred'],
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['ops'] }] }] } } },
      priorityClassName: 'system-cluster-critical',
      podAnnotations: { 'example.com/a': 'b' },
      podLabels: { tier: 'ops' },
      logLevel: 'debug',
      logFormat: 'text',
      extraArgs: ['--stuck-pod-grace=10m'],
      labels: { team: 'platform' },
    };
    const objects = synthController(props);
    const d = find(objects, 'Deployment', 'kube-workerpool-controller');
    const pod = at(d, 'spec.template.spec') as Record<string, unknown>;
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(pod.nodeSelector).toEqual(props.nodeSelector);
    expect(pod.tolerations).toEqual(props.tolerations);
    expect(pod.affinity).toEqual(props.affinity);
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(at(d, 'spec.template.metadata.annotations')).toEqual({ 'example.com/a': 'b' });
    expect(at(d, 'spec.template.metadata.labels')).toMatchObject({ tier: 'ops', team: 'platform', 'app.kubernetes.io/name': 'kube-workerpool-controller' });
    expect((pod.containers as ContainerJson[])[0]?.args.slice(-3)).toEqual(['--log-level=debug', '--log-format=text', '--stuck-pod-grace=10m']);
    for (const o of objects) expect(o.metadata.labels?.team, `${o.kind} ${o.metadata.name}`).toBe('platform');
  });

  test('a ServiceMonitor for the metrics Service, secure or not', () => {
    const secure = find(synthController({ serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } }), 'ServiceMonitor', 'kube-workerpool-controller-metrics');
    expect(secure.metadata.labels).toMatchObject({ release: 'prometheus', 'app.kubernetes.io/component': 'metrics' });
    expect(at(secure, 'spec.endpoints')).toEqual([
      { port: 'https', path: '/metrics', interval: '30s', scheme: 'https', bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', tlsConfig: { insecureSkipVerify: true } },
    ]);
    expect(at(secure, 'spec.selector.matchLabels')).toEqual({ 'app.kubernetes.io/component': 'controller', 'app.kubernetes.io/name': 'kube-workerpool-controller' });
    const plain = find(synthController({ metricsSecure: false, serviceMonitor: { enabled: true } }), 'ServiceMonitor', 'kube-workerpool-controller-metrics');
    expect(at(plain, 'spec.endpoints')).toEqual([{ port: 'http', path: '/metrics', interval: '30s', scheme: 'http' }]);
    expect(synthController().some((o) => o.kind === 'ServiceMonitor')).toBe(false);
  });

  test('metricsCertSecretName mounts the Secret where the controller looks for tls.crt and tls.key', () => {
    const deployment = find(synthController({ metricsCertSecretName: 'metrics-tls' }), 'Deployment', 'kube-workerpool-controller');
    const c = (at(deployment, 'spec.template.spec.containers') as (ContainerJson & { volumeMounts: unknown })[])[0];
    expect(c.args).toContain('--metrics-cert-dir=/tmp/k8s-metrics-server/serving-certs');
    expect(c.volumeMounts).toEqual([{ name: 'metrics-certs', mountPath: '/tmp/k8s-metrics-server/serving-certs', readOnly: true }]);
    expect(at(deployment, 'spec.template.spec.volumes')).toEqual([{ name: 'metrics-certs', secret: { secretName: 'metrics-tls' } }]);
    // Without it: no volume, the controller makes a self-signed certificate.
    expect(() => at(find(synthController(), 'Deployment', 'kube-workerpool-controller'), 'spec.template.spec.volumes')).toThrow('breaks at "volumes"');
  });

  test('metricsPort 0 turns metrics off and drops the Service', () => {
    const objects = synthController({ metricsPort: 0 });
    expect(objects.some((o) => o.kind === 'Service')).toBe(false);
    expect(manager({ metricsPort: 0 }).args).toContain('--metrics-bind-address=0');
  });

  test('an admission policy confines the ServiceAccount to managed Pods and Secrets; admissionPolicy false leaves it out', () => {
    const objects = synthController();
    const policy = find(objects, 'ValidatingAdmissionPolicy', 'kube-workerpool-controller-managed-objects');
    expect(at(policy, 'spec.matchConditions')).toEqual([
      { name: 'controller-service-account', expression: "request.userInfo.username == 'system:serviceaccount:spacelift-worker-controller-system:kube-workerpool-controller'" },
    ]);
    expect(at(policy, 'spec.matchConstraints.resourceRules')).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['pods', 'secrets'], scope: '*' }]);
    expect(at(policy, 'spec.failurePolicy')).toBe('Fail');
    expect(at(find(objects, 'ValidatingAdmissionPolicyBinding', 'kube-workerpool-controller-managed-objects'), 'spec')).toEqual({
      policyName: 'kube-workerpool-controller-managed-objects',
      validationActions: ['Deny'],
    });
    expect(synthController({ admissionPolicy: false }).map((o) => o.kind)).not.toContain('ValidatingAdmissionPolicy');
  });

  test('includeCrds false and createNamespace false leave them out', () => {
    const kinds = synthController({ includeCrds: false, createNamespace: false }).map((o) => o.kind);
    expect(kinds).not.toContain('CustomResourceDefinition');
    expect(kinds).not.toContain('Namespace');
  });

  test.each<[WorkerPoolControllerProps, string]>([
    [{ replicas: 0 }, 'replicas must be an integer from 1 to 9007199254740991, got 0'],
    [{ replicas: 1.5 }, 'got 1.5'],
    [{ replicas: 2, leaderElect: false }, 'replicas is 2 but leaderElect is false'],
    [{ namespace: 'Team_A' }, 'namespace must be a DNS-1123 label'],
    [{ watchNamespaces: ['ok', 'Not OK'] }, 'watchNamespaces[] must be a DNS-1123 label (lowercase letters, digits and \'-\', at most 63 characters), got "Not OK"'],
    [{ metricsPort: 70000 }, 'metricsPort must be an integer from 0 to 65535, got 70000'],
    [{ metricsPort: 8081 }, 'metricsPort and healthProbePort must differ, both are 8081'],
    [{ image: ' ' }, 'image must not be empty'],
    [{ metricsCertSecretName: 'tls', metricsSecure: false }, 'metricsCertSecretName needs the secure metrics endpoint'],
    [{ logLevel: 'verbose' as 'info' }, 'logLevel must be one of debug, info, warn, error, got "verbose"'],
    [{ extraArgs: ['stuck-pod-grace=1m'] }, 'extraArgs[0] must be a flag starting with "--", got "stuck-pod-grace=1m"'],
    [{ imagePullSecrets: ['Reg Cred'] }, 'imagePullSecrets[] must be a DNS-1123 subdomain'],
    [{ metricsPort: 0, serviceMonitor: { enabled: true } }, 'serviceMonitor.enabled needs the metrics endpoint (metricsPort is 0)'],
    [{ dashboards: { enabled: true, label: 'not a key' } }, 'dashboards.label must be a label key'],
    [{ resources: { limits: { cpu: ' ' } } }, 'resources.limits.cpu must not be empty'],
  ])('rejects %j', (props, message) => {
    const chart = new Chart(Testing.app(), 'test');
    expect(() => new WorkerPoolController(chart, 'c', props)).toThrow(message);
  });
});
