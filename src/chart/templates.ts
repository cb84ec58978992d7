/**
 * The chart's templates, made from the objects the WorkerPoolController
 * construct synthesizes: the construct is synthesized with sentinel strings
 * where a value goes (the name, the release namespace, ...) and with every
 * optional part turned on, then each value-dependent field is replaced by
 * template lines (a Hole) and each optional object is wrapped in its
 * condition. Everything else (CRD schemas, RBAC rules, the admission policy,
 * probes, security contexts, labels) is the construct's output as is. The
 * chart tests render the templates with real helm for many settings and
 * compare the result with the construct's, object by object.
 */
import { Chart, Testing } from 'cdk8s';
import { WorkerPoolController, type WorkerPoolControllerProps } from '../../constructs/controller.js';
import { LABEL_INSTALL_MANAGED_BY, LABEL_INSTANCE } from '../../constructs/labels.js';
import { DASHBOARD_FILE } from '../../constructs/monitoring.js';
import { DEFAULT_METRICS_CERT_DIR } from '../controller/cli/flags.js';
import { blockHole, linesHole, mergeHole, templateText, valueHole, whenHole } from './template-yaml.js';

/** Sentinel strings (valid names, none a part of another) and what they become. */
const S = {
  name: 'xxnamexx',
  namespace: 'xxreleasenamespacexx',
  watch: 'xxwatchxx',
  cert: 'xxcertxx',
  interval: 'xxintervalxx',
  dashNamespace: 'xxdashnsxx',
  dashLabel: 'xxdashlabelxx',
  dashValue: 'xxdashvaluexx',
  instance: 'xxinstancexx',
  managedBy: 'xxmanagedbyxx',
} as const;

const SENTINELS = new Map<string, string>([
  [S.name, '{{ $.Values.name }}'],
  [S.namespace, '{{ $.Release.Namespace }}'],
  [S.watch, '{{ $ns }}'],
  [S.cert, '{{ $.Values.metrics.certSecretName }}'],
  [S.interval, '{{ $.Values.serviceMonitor.interval }}'],
  [S.dashNamespace, '{{ $.Values.dashboards.namespace | default $.Release.Namespace }}'],
  [S.dashLabel, '{{ $.Values.dashboards.label }}'],
  [S.dashValue, '{{ $.Values.dashboards.labelValue | quote }}'],
  [S.instance, '{{ $.Release.Name | quote }}'],
  [S.managedBy, '{{ $.Release.Service }}'],
]);

/** Map keys that stand for a map of the values merged into theirs. */
const MERGED = new Map<string, string>([
  ['xxcommonlabelsxx', '$.Values.commonLabels'],
  ['xxpodlabelsxx', '$.Values.podLabels'],
  ['xxservicemonitorlabelsxx', '$.Values.serviceMonitor.labels'],
  ['xxpodannotationsxx', '$.Values.podAnnotations'],
  ['xxdashboardannotationsxx', '$.Values.dashboards.annotations'],
]);

const marker = (expr: string): string => [...MERGED].find(([, e]) => e === expr)?.[0] ?? '';

/** Every optional part on, values as sentinels. */
function templateProps(watchNamespaces: readonly string[]): WorkerPoolControllerProps {
  return {
    name: S.name,
    namespace: S.namespace,
    createNamespace: false,
    watchNamespaces,
    labels: { [LABEL_INSTANCE]: S.instance, [LABEL_INSTALL_MANAGED_BY]: S.managedBy, [marker('$.Values.commonLabels')]: 'x' },
    podLabels: { [marker('$.Values.podLabels')]: 'x' },
    podAnnotations: { [marker('$.Values.podAnnotations')]: 'x' },
    metricsCertSecretName: S.cert,
    serviceMonitor: { enabled: true, interval: S.interval, labels: { [marker('$.Values.serviceMonitor.labels')]: 'x' } },
    dashboards: { enabled: true, label: S.dashLabel, labelValue: S.dashValue, namespace: S.dashNamespace, annotations: { [marker('$.Values.dashboards.annotations')]: 'x' } },
  };
}

type Json = Record<string, unknown>;

function synth(props: WorkerPoolControllerProps): Json[] {
  const chart = new Chart(Testing.app(), 'chart', { disableResourceNameHashes: true });
  new WorkerPoolController(chart, 'controller', props);
  return (Testing.synth(chart) as Json[]).map((o) => withMergeHoles(o) as Json);
}

function withMergeHoles(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withMergeHoles);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const expr = MERGED.get(k);
      return [k, expr === undefined ? withMergeHoles(v) : mergeHole(expr)];
    }),
  );
}

function obj(value: unknown, path: string): Json {
  let node = value;
  for (const part of path.split('.')) {
    if (part === '') continue;
    node = Array.isArray(node) ? node[Number(part)] : (node as Json | undefined)?.[part];
  }
  if (typeof node !== 'object' || node === null) throw new Error(`no object at ${path}`);
  return node as Json;
}

const IMAGE = '"{{ $.Values.image.repository }}{{ if $.Values.image.digest }}@{{ $.Values.image.digest }}{{ else }}:{{ $.Values.image.tag }}{{ end }}"';

/** The controller's flags, as the construct builds them (constructs/controller.ts). */
const ARGS = [
  '- --metrics-bind-address={{ if $.Values.metrics.enabled }}:{{ $.Values.metrics.port }}{{ else }}0{{ end }}',
  '- --metrics-secure={{ $.Values.metrics.secure }}',
  '- --health-probe-bind-address=:{{ $.Values.healthProbePort }}',
  '{{- if $.Values.metrics.certSecretName }}',
  `- --metrics-cert-dir=${DEFAULT_METRICS_CERT_DIR}`,
  '{{- end }}',
  '{{- if $.Values.leaderElection }}',
  '- --leader-elect',
  '{{- end }}',
  '{{- with $.Values.namespaces }}',
  '- --namespaces={{ join "," . }}',
  '{{- end }}',
  '- --log-level={{ $.Values.logLevel }}',
  '- --log-format={{ $.Values.logFormat }}',
  '{{- range $.Values.extraArgs }}',
  '- {{ . | quote }}',
  '{{- end }}',
];

/** Settings the construct refuses, refused the same way (the schema checks each value alone). */
const CHECKS = [
  '{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection) }}',
  '{{- fail (printf "replicaCount is %v but leaderElection is false: several controllers would fight over the same workers" .Values.replicaCount) }}',
  '{{- end }}',
  '{{- if and .Values.metrics.certSecretName (not (and .Values.metrics.enabled .Values.metrics.secure)) }}',
  '{{- fail (printf "metrics.certSecretName is %q but needs the secure metrics endpoint (metrics.enabled and metrics.secure true)" .Values.metrics.certSecretName) }}',
  '{{- end }}',
  '{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.healthProbePort)) }}',
  '{{- fail (printf "metrics.port and healthProbePort must differ, both are %v" .Values.metrics.port) }}',
  '{{- end }}',
  '{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}',
  '{{- fail "serviceMonitor.enabled needs metrics.enabled: there is no endpoint to scrape" }}',
  '{{- end }}',
  '{{- if and .Values.admissionPolicy.enabled (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}',
  '{{- fail (printf "admissionPolicy.enabled needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy), this cluster is %s: set admissionPolicy.enabled=false" .Capabilities.KubeVersion.Version) }}',
  '{{- end }}',
];

function deployment(d: Json): void {
  const spec = obj(d, 'spec');
  spec.replicas = valueHole('$.Values.replicaCount');
  const template = obj(spec, 'template');
  obj(template, 'metadata').annotations = blockHole('$.Values.podAnnotations');
  const pod = obj(template, 'spec');
  // Keys the synthesis left out (empty) come back as optional blocks.
  pod.imagePullSecrets = blockHole('$.Values.imagePullSecrets');
  pod.nodeSelector = blockHole('$.Values.nodeSelector');
  pod.tolerations = blockHole('$.Values.tolerations');
  pod.affinity = blockHole('$.Values.affinity');
  pod.priorityClassName = linesHole(['{{- with $.Values.priorityClassName }}', 'priorityClassName: {{ . | quote }}', '{{- end }}']);
  pod.volumes = whenHole('$.Values.metrics.certSecretName', pod.volumes);
  const container = obj(pod, 'containers.0');
  container.image = linesHole([`image: ${IMAGE}`]);
  container.imagePullPolicy = valueHole('$.Values.image.pullPolicy');
  container.args = linesHole(['args:', ...ARGS.map((a) => `  ${a}`)]);
  const [health, metrics] = container.ports as Json[];
  if (health === undefined || metrics === undefined) throw new Error('the Deployment has no health and metrics ports');
  health.containerPort = valueHole('$.Values.healthProbePort');
  metrics.containerPort = valueHole('$.Values.metrics.port');
  container.ports = [health, whenHole('$.Values.metrics.enabled', metrics)];
  container.volumeMounts = whenHole('$.Values.metrics.certSecretName', container.volumeMounts);
  container.resources = blockHole('$.Values.resources', { always: true });
}

const SECURE = '$.Values.metrics.secure';

function service(s: Json): void {
  const port = obj(s, 'spec.ports.0');
  port.name = valueHole(`ternary "https" "http" ${SECURE}`);
  port.port = valueHole('$.Values.metrics.port');
}

function serviceMonitor(m: Json): void {
  const endpoint = obj(m, 'spec.endpoints.0');
  endpoint.port = valueHole(`ternary "https" "http" ${SECURE}`);
  endpoint.scheme = valueHole(`ternary "https" "http" ${SECURE}`);
  endpoint.bearerTokenFile = whenHole(SECURE, endpoint.bearerTokenFile);
  endpoint.tlsConfig = whenHole(SECURE, endpoint.tlsConfig);
}

function dashboard(c: Json): void {
  obj(c, 'metadata').annotations = blockHole('$.Values.dashboards.annotations');
  obj(c, 'data')[DASHBOARD_FILE] = valueHole(`$.Files.Get "dashboards/${DASHBOARD_FILE}" | toJson`);
}

function crd(c: Json): void {
  const metadata = obj(c, 'metadata');
  metadata.annotations = whenHole('$.Values.crds.keep', metadata.annotations);
}

/** A template file: its objects, each with the condition it is written under. */
interface TemplateFile {
  readonly objects: { readonly object: Json; readonly open: string; readonly close: string }[];
  readonly head?: readonly string[];
}

const when = (condition: string) => ({ open: `{{- if ${condition} }}`, close: '{{- end }}' });
const always = { open: '', close: '' };

/** templates/<file>: text. */
export function chartTemplates(): Record<string, string> {
  const all = synth(templateProps([]));
  const namespaced = synth(templateProps([S.watch]));
  const files: Record<string, TemplateFile> = {
    'crds.yaml': { objects: [] },
    'serviceaccount.yaml': { objects: [] },
    'rbac.yaml': { objects: [] },
    'admission-policy.yaml': { objects: [] },
    'deployment.yaml': { objects: [], head: CHECKS },
    'service.yaml': { objects: [] },
    'servicemonitor.yaml': { objects: [] },
    'dashboard.yaml': { objects: [] },
  };
  const add = (file: string, object: Json, condition: { open: string; close: string }): void => {
    files[file]?.objects.push({ object, ...condition });
  };
  const managerName = `${S.name}-manager`;
  for (const o of all) {
    const kind = o.kind as string;
    const name = obj(o, 'metadata').name as string;
    switch (kind) {
      case 'CustomResourceDefinition':
        crd(o);
        add('crds.yaml', o, when('$.Values.crds.install'));
        break;
      case 'ServiceAccount':
        add('serviceaccount.yaml', o, always);
        break;
      case 'ClusterRole':
      case 'ClusterRoleBinding':
        add('rbac.yaml', o, name === managerName ? when('not $.Values.namespaces') : always);
        break;
      case 'Role':
      case 'RoleBinding':
        add('rbac.yaml', o, always);
        break;
      case 'ValidatingAdmissionPolicy':
      case 'ValidatingAdmissionPolicyBinding':
        add('admission-policy.yaml', o, when('$.Values.admissionPolicy.enabled'));
        break;
      case 'Deployment':
        deployment(o);
        add('deployment.yaml', o, always);
        break;
      case 'Service':
        service(o);
        add('service.yaml', o, when('$.Values.metrics.enabled'));
        break;
      case 'ServiceMonitor':
        serviceMonitor(o);
        add('servicemonitor.yaml', o, when('and $.Values.metrics.enabled $.Values.serviceMonitor.enabled'));
        break;
      case 'ConfigMap':
        dashboard(o);
        add('dashboard.yaml', o, when('$.Values.dashboards.enabled'));
        break;
      default:
        throw new Error(`the chart does not know where ${kind} ${name} goes (src/chart/templates.ts)`);
    }
  }
  // The manager Role and binding of each watched namespace, from the synthesis with one sentinel namespace.
  for (const o of namespaced) {
    if ((o.kind === 'Role' || o.kind === 'RoleBinding') && obj(o, 'metadata').name === managerName && obj(o, 'metadata').namespace === S.watch) {
      add('rbac.yaml', o, { open: '{{- range $ns := $.Values.namespaces }}', close: '{{- end }}' });
    }
  }

  const out: Record<string, string> = {};
  for (const [file, { objects, head }] of Object.entries(files)) {
    const parts = [...(head ?? [])];
    for (const { object, open, close } of objects) {
      if (open !== '') parts.push(open);
      parts.push('---', templateText(object, SENTINELS).trimEnd());
      if (close !== '') parts.push(close);
    }
    out[file] = `${parts.join('\n')}\n`;
  }
  return out;
}
