/**
 * The whole install of the controller as one construct: CRDs, Namespace,
 * ServiceAccount, RBAC, admission policy, Deployment, metrics Service and,
 * when asked, a ServiceMonitor and the Grafana dashboard. The Helm chart in
 * dist/chart is generated from it (src/chart).
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE } from '../src/api/constants.js';
import { DEFAULT_METRICS_CERT_DIR } from '../src/controller/cli/flags.js';
import { LOG_LEVELS, type LogFormat, type LogLevel } from '../src/runtime/log.js';
import { ControllerAdmissionPolicy } from './admission-policy.js';
import { LABEL_COMPONENT, LABEL_NAME, labelAll, recommendedLabels, VERSION } from './labels.js';
import { ControllerDashboard, ControllerServiceMonitor } from './monitoring.js';
import { ControllerRbac } from './rbac.js';
import { WorkerCrd } from './worker-crd.js';
import { WorkerPoolCrd } from './workerpool-crd.js';
import { checkInteger, checkLabelKey, checkLabelName, checkNonEmpty, checkObjectName, checkOneOf } from './validate.js';

/**
 * The controller container's resources, in the shape of a Pod's (the Helm
 * chart's `resources` value). Each map is merged over the default, so
 * `{ limits: { cpu: '2' } }` keeps the requests and the memory limit; a key
 * set to `undefined` removes the default's entry.
 */
export interface ControllerResources {
  /** @default { cpu: "100m", memory: "128Mi" } */
  readonly requests?: Readonly<Record<string, string | undefined>>;
  /**
   * No CPU limit by default: scaling a pool out generates one RSA key per
   * worker and is CPU-bound, so throttling would only slow it down.
   * @default { memory: "512Mi" }
   */
  readonly limits?: Readonly<Record<string, string | undefined>>;
}

/** A monitoring.coreos.com/v1 ServiceMonitor for the metrics Service (the Prometheus Operator's CRD must exist). */
export interface ControllerServiceMonitorOptions {
  /** @default false */
  readonly enabled?: boolean;
  /** @default "30s" */
  readonly interval?: string;
  /** Labels your Prometheus selects ServiceMonitors by (e.g. `release: prometheus`). @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The Grafana dashboard (dist/grafana-dashboard.json) in a ConfigMap that Grafana's dashboard sidecar loads. */
export interface ControllerDashboardOptions {
  /** @default false */
  readonly enabled?: boolean;
  /** Label the sidecar looks for. @default "grafana_dashboard" */
  readonly label?: string;
  /** @default "1" */
  readonly labelValue?: string;
  /** Namespace of the ConfigMap, where the sidecar looks. @default - the controller's namespace */
  readonly namespace?: string;
  /** Annotations of the ConfigMap (e.g. `grafana_folder`). @default {} */
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * Props of the install. The Helm chart (dist/chart) has a value for each
 * (its README's table names the prop of every value), and its templates
 * render the same objects as this construct for the same settings.
 */
export interface WorkerPoolControllerProps {
  /**
   * Controller image. No image is published: build the Dockerfile and push it.
   * @default "kube-workerpool-controller:0.1.0"
   */
  readonly image?: string;
  /** @default "IfNotPresent" */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Names of `kubernetes.io/dockerconfigjson` Secrets in the controller's
   * namespace to pull the image with.
   * @default []
   */
  readonly imagePullSecrets?: readonly string[];
  /**
   * Namespace of the controller.
   * @default "spacelift-worker-controller-system"
   */
  readonly namespace?: string;
  /**
   * Whether to create the namespace; turn off when another part of your app owns it.
   * @default true
   */
  readonly createNamespace?: boolean;
  /**
   * Watch only these namespaces (and get RBAC only in them: a Role in each,
   * no ClusterRole for pools, workers, Pods or Secrets).
   * @default - every namespace
   */
  readonly watchNamespaces?: readonly string[];
  /**
   * Controller replicas; more than one needs leader election.
   * @default 1
   */
  readonly replicas?: number;
  /** @default true */
  readonly leaderElect?: boolean;
  /**
   * Port of the metrics endpoint; 0 turns metrics off.
   * @default 8443
   */
  readonly metricsPort?: number;
  /**
   * Serve metrics over HTTPS with Kubernetes authentication and authorization.
   * @default true
   */
  readonly metricsSecure?: boolean;
  /**
   * A `kubernetes.io/tls` Secret (keys `tls.crt` and `tls.key`, e.g. made by
   * cert-manager) in the controller's namespace, mounted at
   * `/tmp/k8s-metrics-server/serving-certs` and served by the metrics
   * endpoint; a renewed certificate is picked up without a restart.
   * @default - the controller serves a self-signed certificate made at start
   */
  readonly metricsCertSecretName?: string;
  /** @default 8081 */
  readonly healthProbePort?: number;
  /** @default - requests 100m CPU and 128Mi memory, memory limit 512Mi */
  readonly resources?: ControllerResources;
  /** Node labels the controller Pod must match. @default {} */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /**
   * Tolerations of the controller Pod. Written out as given (their field
   * names are Kubernetes' own), so fields newer than cdk8s-plus-28 pass too.
   * @default []
   */
  readonly tolerations?: readonly k8s.Toleration[];
  /** Affinity of the controller Pod, written out as given like `tolerations`. @default - none */
  readonly affinity?: k8s.Affinity;
  /** @default - none */
  readonly priorityClassName?: string;
  /** Annotations of the controller Pod. @default {} */
  readonly podAnnotations?: Readonly<Record<string, string>>;
  /** Labels of the controller Pod, beside the recommended ones. @default {} */
  readonly podLabels?: Readonly<Record<string, string>>;
  /** The controller's `--log-level`. @default "info" */
  readonly logLevel?: LogLevel;
  /** The controller's `--log-format`. @default "json" */
  readonly logFormat?: LogFormat;
  /**
   * More controller flags, after the ones the props set (e.g.
   * `--stuck-pod-grace=10m`; README "Controller flags").
   * @default []
   */
  readonly extraArgs?: readonly string[];
  /** @default - no ServiceMonitor */
  readonly serviceMonitor?: ControllerServiceMonitorOptions;
  /** @default - no dashboard ConfigMap */
  readonly dashboards?: ControllerDashboardOptions;
  /**
   * Include the CustomResourceDefinitions.
   * @default true
   */
  readonly includeCrds?: boolean;
  /**
   * Annotate the CRDs with `helm.sh/resource-policy: keep`, so that
   * `helm uninstall` (and Helm upgrades that drop them) leave them, and with
   * them every WorkerPool and Worker. `kubectl delete` ignores it.
   * @default true
   */
  readonly keepCrds?: boolean;
  /**
   * Install a ValidatingAdmissionPolicy (and its binding) that refuses Pods
   * and Secrets the controller's ServiceAccount creates, changes or deletes
   * unless they carry the controller's managed-by label and a controller owner
   * reference to a Worker. Needs Kubernetes 1.30 or newer.
   * @default true
   */
  readonly admissionPolicy?: boolean;
  /**
   * Prefix of the names of every object of the install.
   * @default "kube-workerpool-controller"
   */
  readonly name?: string;
  /**
   * Labels of every object, after the recommended `app.kubernetes.io/*` ones
   * (Helm sets `app.kubernetes.io/instance` and `managed-by` through this).
   * @default {}
   */
  readonly labels?: Readonly<Record<string, string>>;
}

/** The defaults of the props above: the Helm chart's values.yaml takes its defaults from here. */
export const CONTROLLER_DEFAULTS = {
  image: `${CONTROLLER_NAME}:${VERSION}`,
  imagePullPolicy: 'IfNotPresent',
  replicas: 1,
  leaderElect: true,
  metricsPort: 8443,
  metricsSecure: true,
  healthProbePort: 8081,
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
  logLevel: 'info',
  logFormat: 'json',
  serviceMonitorInterval: '30s',
  dashboardLabel: 'grafana_dashboard',
  dashboardLabelValue: '1',
} as const;

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

const CONTROLLER_UID = 65532;

export class WorkerPoolController extends Construct {
  public readonly namespace: string;
  public readonly serviceAccountName: string;
  /** The controller's Deployment (`addJsonPatch` on it is the escape hatch for fields the props lack). */
  public readonly deployment: ApiObject;
  public readonly metricsService?: k8s.KubeService;

  constructor(scope: Construct, id: string, props: WorkerPoolControllerProps = {}) {
    super(scope, id);
    const d = CONTROLLER_DEFAULTS;
    const name = props.name ?? CONTROLLER_NAME;
    const namespace = props.namespace ?? DEFAULT_CONTROLLER_NAMESPACE;
    const image = props.image ?? d.image;
    const replicas = props.replicas ?? d.replicas;
    const leaderElect = props.leaderElect ?? d.leaderElect;
    const metricsPort = props.metricsPort ?? d.metricsPort;
    const metricsSecure = props.metricsSecure ?? d.metricsSecure;
    const healthProbePort = props.healthProbePort ?? d.healthProbePort;
    const watchNamespaces = props.watchNamespaces ?? [];
    const logLevel = props.logLevel ?? d.logLevel;
    const logFormat = props.logFormat ?? d.logFormat;
    const extraArgs = props.extraArgs ?? [];
    const extraLabels = props.labels ?? {};

    checkLabelName('name', name);
    checkLabelName('namespace', namespace);
    for (const ns of watchNamespaces) checkLabelName('watchNamespaces[]', ns);
    checkNonEmpty('image', image);
    checkInteger('replicas', replicas, 1);
    checkInteger('metricsPort', metricsPort, 0, 65535);
    checkInteger('healthProbePort', healthProbePort, 1, 65535);
    checkOneOf('logLevel', logLevel, LOG_LEVELS);
    checkOneOf('logFormat', logFormat, LOG_FORMATS);
    for (const secret of props.imagePullSecrets ?? []) checkObjectName('imagePullSecrets[]', secret);
    if (props.priorityClassName !== undefined) checkObjectName('priorityClassName', props.priorityClassName);
    extraArgs.forEach((arg, i) => {
      if (!arg.startsWith('--')) throw new Error(`extraArgs[${i}] must be a flag starting with "--", got ${JSON.stringify(arg)}`);
    });
    if (replicas > 1 && !leaderElect) {
      throw new Error(`replicas is ${replicas} but leaderElect is false: several controllers would fight over the same workers`);
    }
    const metricsCertSecret = props.metricsCertSecretName;
    if (metricsCertSecret !== undefined) {
      checkNonEmpty('metricsCertSecretName', metricsCertSecret);
      if (metricsPort === 0 || !metricsSecure) {
        throw new Error('metricsCertSecretName needs the secure metrics endpoint (metricsPort not 0, metricsSecure true)');
      }
    }
    if (metricsPort === healthProbePort) {
      throw new Error(`metricsPort and healthProbePort must differ, both are ${metricsPort}`);
    }
    if (props.serviceMonitor?.enabled === true && metricsPort === 0) {
      throw new Error('serviceMonitor.enabled needs the metrics endpoint (metricsPort is 0)');
    }

    this.namespace = namespace;
    this.serviceAccountName = name;
    // The Deployment's selector: unchanged since the first release, because a selector cannot change.
    const selector = { [LABEL_NAME]: name, [LABEL_COMPONENT]: 'controller' };

    if (props.includeCrds ?? true) {
      for (const crd of [new WorkerPoolCrd(this, 'WorkerPoolCrd'), new WorkerCrd(this, 'WorkerCrd')]) {
        crd.resource.metadata.addLabel(LABEL_COMPONENT, 'crd');
        if (props.keepCrds ?? true) crd.resource.metadata.addAnnotation('helm.sh/resource-policy', 'keep');
      }
    }
    if (props.createNamespace ?? true) {
      new k8s.KubeNamespace(this, 'Namespace', { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    }
    new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata: { name, namespace } });
    new ControllerRbac(this, 'Rbac', { name, namespace, serviceAccountName: name, watchNamespaces });
    if (props.admissionPolicy ?? true) {
      const policy = new ControllerAdmissionPolicy(this, 'AdmissionPolicy', { name: `${name}-managed-objects`, namespace, serviceAccountName: name });
      for (const c of policy.node.findAll()) if (ApiObject.isApiObject(c)) c.metadata.addLabel(LABEL_COMPONENT, 'admission-policy');
    }

    const args = [
      `--metrics-bind-address=${metricsPort === 0 ? '0' : `:${metricsPort}`}`,
      `--metrics-secure=${metricsSecure}`,
      `--health-probe-bind-address=:${healthProbePort}`,
    ];
    if (metricsCertSecret !== undefined) args.push(`--metrics-cert-dir=${DEFAULT_METRICS_CERT_DIR}`);
    if (leaderElect) args.push('--leader-elect');
    if (watchNamespaces.length > 0) args.push(`--namespaces=${watchNamespaces.join(',')}`);
    args.push(`--log-level=${logLevel}`, `--log-format=${logFormat}`, ...extraArgs);

    const ports: k8s.ContainerPort[] = [{ name: 'health', containerPort: healthProbePort, protocol: 'TCP' }];
    if (metricsPort !== 0) ports.push({ name: 'metrics', containerPort: metricsPort, protocol: 'TCP' });

    const podLabels = { ...recommendedLabels(name, 'controller', extraLabels), ...props.podLabels, ...selector };
    const podAnnotations = props.podAnnotations ?? {};

    const spec: k8s.DeploymentSpec = {
      replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: podLabels, ...(Object.keys(podAnnotations).length > 0 ? { annotations: { ...podAnnotations } } : {}) },
        spec: {
          serviceAccountName: name,
          terminationGracePeriodSeconds: 30,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: CONTROLLER_UID,
            runAsGroup: CONTROLLER_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...nonEmpty('imagePullSecrets', (props.imagePullSecrets ?? []).map((secret) => ({ name: secret }))),
          ...nonEmpty('nodeSelector', props.nodeSelector === undefined ? {} : { ...props.nodeSelector }),
          ...(props.priorityClassName === undefined ? {} : { priorityClassName: props.priorityClassName }),
          containers: [
            {
              name: 'manager',
              image,
              imagePullPolicy: props.imagePullPolicy ?? d.imagePullPolicy,
              args,
              env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
              ports,
              ...(metricsCertSecret === undefined ? {} : { volumeMounts: [{ name: 'metrics-certs', mountPath: DEFAULT_METRICS_CERT_DIR, readOnly: true }] }),
              livenessProbe: { httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('health') }, initialDelaySeconds: 15, periodSeconds: 20 },
              readinessProbe: { httpGet: { path: '/readyz', port: k8s.IntOrString.fromString('health') }, initialDelaySeconds: 5, periodSeconds: 10 },
              resources: containerResources(props.resources),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
          ...(metricsCertSecret === undefined ? {} : { volumes: [{ name: 'metrics-certs', secret: { secretName: metricsCertSecret } }] }),
        },
      },
    };
    // Tolerations and affinity go in as given, after the conversion of the
    // rest: cdk8s-plus-28's would silently drop their fields of newer
    // Kubernetes versions (matchLabelKeys, ...), which Helm users can set.
    const specJson = k8s.toJson_DeploymentSpec(spec) as { template: { spec: Record<string, unknown> } };
    if (props.tolerations !== undefined && props.tolerations.length > 0) specJson.template.spec.tolerations = props.tolerations;
    if (props.affinity !== undefined && Object.keys(props.affinity).length > 0) specJson.template.spec.affinity = props.affinity;
    this.deployment = new ApiObject(this, 'Deployment', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace }, spec: specJson });

    if (metricsPort !== 0) {
      const portName = metricsSecure ? 'https' : 'http';
      this.metricsService = new k8s.KubeService(this, 'MetricsService', {
        metadata: { name: `${name}-metrics`, namespace },
        spec: {
          selector,
          ports: [{ name: portName, port: metricsPort, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' }],
        },
      });
      if (props.serviceMonitor?.enabled === true) {
        new ControllerServiceMonitor(this, 'ServiceMonitor', {
          name: `${name}-metrics`,
          namespace,
          selector,
          portName,
          secure: metricsSecure,
          interval: props.serviceMonitor.interval ?? d.serviceMonitorInterval,
          labels: props.serviceMonitor.labels ?? {},
        });
      }
    }
    if (props.dashboards?.enabled === true) {
      const dashboards = props.dashboards;
      const label = dashboards.label ?? d.dashboardLabel;
      checkLabelKey('dashboards.label', label);
      const dashboardNamespace = dashboards.namespace ?? namespace;
      checkLabelName('dashboards.namespace', dashboardNamespace);
      new ControllerDashboard(this, 'Dashboard', {
        name: `${name}-dashboard`,
        namespace: dashboardNamespace,
        labels: { [label]: dashboards.labelValue ?? d.dashboardLabelValue },
        annotations: dashboards.annotations ?? {},
      });
    }

    labelAll(this, name, extraLabels);
  }
}

/** `{ [key]: value }` unless the value is empty, so that empty settings leave no trace in the output. */
function nonEmpty<K extends string, V extends object>(key: K, value: V): Partial<Record<K, V>> {
  const empty = Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
  return empty ? {} : ({ [key]: value } as Record<K, V>);
}

function containerResources(resources: ControllerResources | undefined): k8s.ResourceRequirements {
  const merge = (defaults: Readonly<Record<string, string>>, given: Readonly<Record<string, string | undefined>> = {}, field: string): Record<string, k8s.Quantity> | undefined => {
    const out: Record<string, k8s.Quantity> = {};
    for (const [key, value] of Object.entries({ ...defaults, ...given })) {
      if (value === undefined) continue;
      checkNonEmpty(`resources.${field}.${key}`, value);
      out[key] = k8s.Quantity.fromString(value);
    }
    return Object.keys(out).length === 0 ? undefined : out;
  };
  const requests = merge(CONTROLLER_DEFAULTS.resources.requests, resources?.requests, 'requests');
  const limits = merge(CONTROLLER_DEFAULTS.resources.limits, resources?.limits, 'limits');
  return { ...(requests === undefined ? {} : { requests }), ...(limits === undefined ? {} : { limits }) };
}
