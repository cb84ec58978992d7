/**
 * The Helm chart's values: each one's schema, default, description and the
 * WorkerPoolController prop it sets. values.yaml, values.schema.json and the
 * chart's README are written from this list, and `propsFromValues` is the
 * mapping the chart tests hold the templates to: for the same settings,
 * `helm template` renders what the construct synthesizes.
 */
import type { k8s } from 'cdk8s-plus-28';
import { CONTROLLER_DEFAULTS, type WorkerPoolControllerProps } from '../../constructs/controller.js';
import { LABEL_INSTALL_MANAGED_BY, LABEL_INSTANCE } from '../../constructs/labels.js';
import { CONTROLLER_NAME } from '../api/constants.js';
import { LOG_LEVELS } from '../runtime/log.js';

export type JsonSchema = Record<string, unknown>;

export interface ValueDef {
  /** Dotted path in values.yaml. */
  readonly path: string;
  readonly type: string;
  readonly default: unknown;
  readonly description: string;
  /** The construct prop it maps to, as the README names it. */
  readonly prop: string;
  readonly schema: JsonSchema;
}

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** A DNS label that YAML cannot read as a number. */
const NAME = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** Keys the chart sets itself (the recommended labels): a map that repeated one would render a duplicate key. */
const NOT_RECOMMENDED_LABEL = { not: { pattern: '^app\\.kubernetes\\.io/' } };

/**
 * A schema of type `type`, which also names the value when given a string
 * instead (`--set namespaces=a`): JSON Schema reports a wrong type without
 * the value, a failed pattern with it, so a string meets a pattern that only
 * says what was expected.
 */
function typed(type: 'array' | 'object' | 'integer' | 'boolean', expected: string, rest: JsonSchema = {}): JsonSchema {
  return {
    allOf: [{ if: { type: 'string' }, then: { pattern: `^expected ${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, not a string$` } }, { type, ...rest }],
  };
}

const stringMap = (what: string, keys: JsonSchema = {}): JsonSchema =>
  typed('object', what, { additionalProperties: { type: 'string' }, ...(Object.keys(keys).length > 0 ? { propertyNames: keys } : {}) });
const quantityMap: JsonSchema = typed('object', 'a map of resource names to quantities', {
  additionalProperties: { anyOf: [{ type: 'string', pattern: '^[0-9.]+[a-zA-Z]*$' }, { type: 'number', minimum: 0 }, { type: 'null' }] },
});

const d = CONTROLLER_DEFAULTS;
const [defaultRepository, defaultTag] = d.image.split(':') as [string, string];

export const VALUES: readonly ValueDef[] = [
  {
    path: 'name',
    type: 'string',
    default: CONTROLLER_NAME,
    description: 'Prefix of the name of every object (the Deployment, its ServiceAccount, the roles, the Service, ...) and its `app.kubernetes.io/name` label. Two installs in one cluster need two names.',
    prop: 'name',
    schema: { type: 'string', pattern: NAME, maxLength: 50 },
  },
  {
    path: 'image.repository',
    type: 'string',
    default: defaultRepository,
    description: 'The controller image, without tag. No image is published: build the Dockerfile and push it (README "The container image").',
    prop: 'image',
    schema: { type: 'string', minLength: 1, pattern: '^[^\\s@:]+(:[0-9]+)?(/[^\\s@:]+)*$' },
  },
  {
    path: 'image.tag',
    type: 'string',
    default: defaultTag,
    description: 'The image tag. Quote a tag that looks like a number (`--set-string image.tag=1.0`).',
    prop: 'image',
    schema: { type: 'string', minLength: 1, pattern: '^[\\w][\\w.-]{0,127}$' },
  },
  {
    path: 'image.digest',
    type: 'string',
    default: '',
    description: 'An image digest (`sha256:...`); when set, the image is `repository@digest` and the tag is not used.',
    prop: 'image',
    schema: { type: 'string', pattern: '^(|sha256:[a-f0-9]{64})$' },
  },
  {
    path: 'image.pullPolicy',
    type: 'string',
    default: d.imagePullPolicy,
    description: 'The controller container\'s `imagePullPolicy`.',
    prop: 'imagePullPolicy',
    schema: { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] },
  },
  {
    path: 'imagePullSecrets',
    type: 'list',
    default: [],
    description: 'Secrets in the release namespace to pull the image with, as `[{name: regcred}]`.',
    prop: 'imagePullSecrets (the names)',
    schema: typed('array', 'a list of Secret references (- name: regcred)', {
      items: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', pattern: DNS_SUBDOMAIN } } },
    }),
  },
  {
    path: 'namespaces',
    type: 'list',
    default: [],
    description: 'Namespaces whose WorkerPools the controller serves. Empty: every namespace, with ClusterRoles. A list: those namespaces only (`--namespaces`), with a Role and RoleBinding in each and no cluster-wide access to pools, workers, Pods or Secrets; each must exist before `helm install` or `helm upgrade`.',
    prop: 'watchNamespaces',
    schema: typed('array', 'a list of namespace names', { uniqueItems: true, items: { type: 'string', pattern: DNS_LABEL, maxLength: 63 } }),
  },
  {
    path: 'replicaCount',
    type: 'int',
    default: d.replicas,
    description: 'Controller replicas. One leads (a Lease), the others stand by; more than one needs `leaderElection`.',
    prop: 'replicas',
    schema: typed('integer', 'a whole number of replicas', { minimum: 1 }),
  },
  {
    path: 'leaderElection',
    type: 'bool',
    default: d.leaderElect,
    description: 'Elect a leader on a Lease (`--leader-elect`); only the leader reconciles and holds worker sessions.',
    prop: 'leaderElect',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'resources',
    type: 'object',
    default: d.resources,
    description: 'The controller container\'s resources. No CPU limit by default: scaling a pool out makes one key per worker and is CPU-bound. A key set to `null` removes the default\'s.',
    prop: 'resources',
    schema: typed('object', 'a map with requests and limits', { additionalProperties: false, properties: { requests: quantityMap, limits: quantityMap } }),
  },
  {
    path: 'nodeSelector',
    type: 'object',
    default: {},
    description: 'Node labels the controller Pod must match.',
    prop: 'nodeSelector',
    schema: stringMap('a map of node labels'),
  },
  {
    path: 'tolerations',
    type: 'list',
    default: [],
    description: 'Tolerations of the controller Pod.',
    prop: 'tolerations',
    schema: typed('array', 'a list of tolerations', { items: { type: 'object' } }),
  },
  {
    path: 'affinity',
    type: 'object',
    default: {},
    description: 'Affinity of the controller Pod (e.g. spread the replicas over nodes).',
    prop: 'affinity',
    schema: typed('object', 'an affinity object', { additionalProperties: false, properties: { nodeAffinity: { type: 'object' }, podAffinity: { type: 'object' }, podAntiAffinity: { type: 'object' } } }),
  },
  {
    path: 'priorityClassName',
    type: 'string',
    default: '',
    description: 'PriorityClass of the controller Pod; empty for none.',
    prop: 'priorityClassName',
    schema: { type: 'string', pattern: `^(|${DNS_SUBDOMAIN.slice(1, -1)})$` },
  },
  {
    path: 'podAnnotations',
    type: 'object',
    default: {},
    description: 'Annotations of the controller Pod.',
    prop: 'podAnnotations',
    schema: stringMap('a map of annotations'),
  },
  {
    path: 'podLabels',
    type: 'object',
    default: {},
    description: 'Labels of the controller Pod, beside the recommended ones (which cannot be overridden here).',
    prop: 'podLabels',
    schema: stringMap('a map of labels', NOT_RECOMMENDED_LABEL),
  },
  {
    path: 'commonLabels',
    type: 'object',
    default: {},
    description: 'Labels of every object of the release, beside the recommended `app.kubernetes.io/*` ones.',
    prop: 'labels',
    schema: stringMap('a map of labels', NOT_RECOMMENDED_LABEL),
  },
  {
    path: 'logLevel',
    type: 'string',
    default: d.logLevel,
    description: `The controller's \`--log-level\`: ${LOG_LEVELS.join(', ')}.`,
    prop: 'logLevel',
    schema: { type: 'string', enum: [...LOG_LEVELS] },
  },
  {
    path: 'logFormat',
    type: 'string',
    default: d.logFormat,
    description: 'The controller\'s `--log-format`: `json` (one object a line) or `text`.',
    prop: 'logFormat',
    schema: { type: 'string', enum: ['json', 'text'] },
  },
  {
    path: 'extraArgs',
    type: 'list',
    default: [],
    description: 'More controller flags, after the ones the values set, e.g. `[--stuck-pod-grace=10m]` (README "Controller flags").',
    prop: 'extraArgs',
    schema: typed('array', 'a list of flags', { items: { type: 'string', pattern: '^--[a-z]' } }),
  },
  {
    path: 'healthProbePort',
    type: 'int',
    default: d.healthProbePort,
    description: 'Port of `/healthz` and `/readyz`, which the kubelet probes.',
    prop: 'healthProbePort',
    schema: typed('integer', 'a port number', { minimum: 1, maximum: 65535 }),
  },
  {
    path: 'metrics.enabled',
    type: 'bool',
    default: true,
    description: 'Serve `/metrics` (docs/metrics.md) behind the `<name>-metrics` Service.',
    prop: 'metricsPort (0 when false)',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'metrics.secure',
    type: 'bool',
    default: d.metricsSecure,
    description: 'HTTPS, each request authenticated and authorized through the Kubernetes API (the scraper needs the `<name>-metrics-reader` ClusterRole); false serves plain HTTP to anyone who reaches the port.',
    prop: 'metricsSecure',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'metrics.port',
    type: 'int',
    default: d.metricsPort,
    description: 'Port of the metrics endpoint and of the Service.',
    prop: 'metricsPort',
    schema: typed('integer', 'a port number', { minimum: 1, maximum: 65535 }),
  },
  {
    path: 'metrics.certSecretName',
    type: 'string',
    default: '',
    description: 'A `kubernetes.io/tls` Secret in the release namespace (e.g. from cert-manager) that the metrics endpoint serves, reloaded when renewed; empty: a self-signed certificate made at start.',
    prop: 'metricsCertSecretName',
    schema: { type: 'string', pattern: `^(|${DNS_SUBDOMAIN.slice(1, -1)})$` },
  },
  {
    path: 'serviceMonitor.enabled',
    type: 'bool',
    default: false,
    description: 'Create a Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1; its CRD must exist) for the metrics Service. With `metrics.secure`, bind the `<name>-metrics-reader` ClusterRole to Prometheus\' ServiceAccount.',
    prop: 'serviceMonitor.enabled',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'serviceMonitor.interval',
    type: 'string',
    default: d.serviceMonitorInterval,
    description: 'How often Prometheus scrapes the endpoint.',
    prop: 'serviceMonitor.interval',
    schema: { type: 'string', pattern: '^([0-9]+(ms|s|m|h))+$' },
  },
  {
    path: 'serviceMonitor.labels',
    type: 'object',
    default: {},
    description: 'Labels of the ServiceMonitor, for the `serviceMonitorSelector` of your Prometheus (e.g. `release: prometheus`).',
    prop: 'serviceMonitor.labels',
    schema: stringMap('a map of labels', NOT_RECOMMENDED_LABEL),
  },
  {
    path: 'crds.install',
    type: 'bool',
    default: true,
    description: 'Install the WorkerPool and Worker CRDs as part of the release (templates, so `helm upgrade` updates them). False when they are managed elsewhere.',
    prop: 'includeCrds',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'crds.keep',
    type: 'bool',
    default: true,
    description: 'Annotate the CRDs `helm.sh/resource-policy: keep`: `helm uninstall` then leaves them, and every WorkerPool and Worker with them. To remove the CRDs with the release, `helm upgrade --set crds.keep=false` first (README "Uninstall").',
    prop: 'keepCrds',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'admissionPolicy.enabled',
    type: 'bool',
    default: true,
    description: 'A ValidatingAdmissionPolicy that confines the controller\'s writes of Pods and Secrets to its own (README "Security model"). Needs Kubernetes 1.30 or newer; set false on older clusters.',
    prop: 'admissionPolicy',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'dashboards.enabled',
    type: 'bool',
    default: false,
    description: 'Ship the Grafana dashboard (dashboards/kube-workerpool-controller.json in the chart) in a ConfigMap that Grafana\'s dashboard sidecar loads.',
    prop: 'dashboards.enabled',
    schema: typed('boolean', 'true or false'),
  },
  {
    path: 'dashboards.label',
    type: 'string',
    default: d.dashboardLabel,
    description: 'The label the sidecar looks for (kube-prometheus-stack: `grafana_dashboard`).',
    prop: 'dashboards.label',
    schema: { type: 'string', minLength: 1, maxLength: 316, pattern: '^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$' },
  },
  {
    path: 'dashboards.labelValue',
    type: 'string',
    default: d.dashboardLabelValue,
    description: 'The value of that label the sidecar looks for (kube-prometheus-stack: `1`).',
    prop: 'dashboards.labelValue',
    schema: { type: 'string', maxLength: 63 },
  },
  {
    path: 'dashboards.namespace',
    type: 'string',
    default: '',
    description: 'Namespace of the ConfigMap, one the sidecar searches; empty: the release namespace.',
    prop: 'dashboards.namespace',
    schema: { type: 'string', pattern: `^(|${DNS_LABEL.slice(1, -1)})$` },
  },
  {
    path: 'dashboards.annotations',
    type: 'object',
    default: {},
    description: 'Annotations of the ConfigMap (e.g. `grafana_folder: CI` for the sidecar\'s folder annotation).',
    prop: 'dashboards.annotations',
    schema: stringMap('a map of annotations'),
  },
];

/** Descriptions of the groups of values (the `image:` line of values.yaml, ...). */
export const GROUPS: Readonly<Record<string, string>> = {
  image: 'The controller image.',
  metrics: 'The metrics endpoint.',
  serviceMonitor: 'Prometheus Operator scraping.',
  crds: 'The WorkerPool and Worker CustomResourceDefinitions.',
  admissionPolicy: 'The admission policy.',
  dashboards: 'The Grafana dashboard.',
};

type Tree = { [key: string]: Tree | unknown };

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Tree;
  node[parts[parts.length - 1] as string] = value;
}

/** values.yaml's content as an object. */
export function defaultValues(): Record<string, unknown> {
  const tree: Tree = {};
  for (const v of VALUES) setPath(tree, v.path, structuredClone(v.default));
  return tree;
}

/** values.schema.json: every value typed, unknown keys refused (a misspelt value would otherwise do nothing). */
export function valuesSchema(): JsonSchema {
  const root: JsonSchema = { type: 'object', additionalProperties: false, properties: { global: { type: 'object' } } };
  for (const v of VALUES) {
    const parts = v.path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const props = node.properties as Record<string, JsonSchema>;
      props[part] ??= { type: 'object', additionalProperties: false, ...(GROUPS[part] === undefined ? {} : { description: GROUPS[part] }), properties: {} };
      node = props[part];
    }
    (node.properties as Record<string, JsonSchema>)[parts[parts.length - 1] as string] = { description: v.description, ...v.schema };
  }
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'kube-workerpool-controller chart values', ...root };
}

/** Where the chart is installed: the release's name and namespace. */
export interface Release {
  readonly name: string;
  readonly namespace: string;
}

/** The values as Helm computes them (defaults with overrides), typed. */
export interface ChartValues {
  name: string;
  image: { repository: string; tag: string; digest: string; pullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
  imagePullSecrets: { name: string }[];
  namespaces: string[];
  replicaCount: number;
  leaderElection: boolean;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  nodeSelector: Record<string, string>;
  tolerations: Record<string, unknown>[];
  affinity: Record<string, unknown>;
  priorityClassName: string;
  podAnnotations: Record<string, string>;
  podLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  logFormat: 'json' | 'text';
  extraArgs: string[];
  healthProbePort: number;
  metrics: { enabled: boolean; secure: boolean; port: number; certSecretName: string };
  serviceMonitor: { enabled: boolean; interval: string; labels: Record<string, string> };
  crds: { install: boolean; keep: boolean };
  admissionPolicy: { enabled: boolean };
  dashboards: { enabled: boolean; label: string; labelValue: string; namespace: string; annotations: Record<string, string> };
}

/** A default's keys that the values dropped (`memory: null`), as `undefined`, so the construct drops them too. */
function resourceMap(defaults: Readonly<Record<string, string>>, given: Record<string, string> | undefined): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...given };
  for (const key of Object.keys(defaults)) if (given?.[key] === undefined) out[key] = undefined;
  return out;
}

/** The construct props that install what the chart renders with these values in this release. */
export function propsFromValues(v: ChartValues, release: Release): WorkerPoolControllerProps {
  return {
    name: v.name,
    namespace: release.namespace,
    createNamespace: false,
    image: v.image.digest === '' ? `${v.image.repository}:${v.image.tag}` : `${v.image.repository}@${v.image.digest}`,
    imagePullPolicy: v.image.pullPolicy,
    imagePullSecrets: v.imagePullSecrets.map((s) => s.name),
    watchNamespaces: v.namespaces,
    replicas: v.replicaCount,
    leaderElect: v.leaderElection,
    resources: {
      requests: resourceMap(CONTROLLER_DEFAULTS.resources.requests, v.resources.requests),
      limits: resourceMap(CONTROLLER_DEFAULTS.resources.limits, v.resources.limits),
    },
    nodeSelector: v.nodeSelector,
    // Kubernetes' JSON, which these cdk8s types spell the same way.
    tolerations: v.tolerations as readonly k8s.Toleration[],
    ...(Object.keys(v.affinity).length === 0 ? {} : { affinity: v.affinity as k8s.Affinity }),
    ...(v.priorityClassName === '' ? {} : { priorityClassName: v.priorityClassName }),
    podAnnotations: v.podAnnotations,
    podLabels: v.podLabels,
    logLevel: v.logLevel,
    logFormat: v.logFormat,
    extraArgs: v.extraArgs,
    healthProbePort: v.healthProbePort,
    metricsPort: v.metrics.enabled ? v.metrics.port : 0,
    metricsSecure: v.metrics.secure,
    ...(v.metrics.certSecretName === '' ? {} : { metricsCertSecretName: v.metrics.certSecretName }),
    serviceMonitor: v.serviceMonitor,
    includeCrds: v.crds.install,
    keepCrds: v.crds.keep,
    admissionPolicy: v.admissionPolicy.enabled,
    dashboards: { ...v.dashboards, ...(v.dashboards.namespace === '' ? { namespace: undefined } : {}) },
    labels: { ...v.commonLabels, [LABEL_INSTANCE]: release.name, [LABEL_INSTALL_MANAGED_BY]: 'Helm' },
  };
}
