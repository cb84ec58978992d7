/**
 * The whole install of the controller as one construct: CRDs, Namespace,
 * ServiceAccount, RBAC, Deployment and metrics Service.
 */
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE } from '../src/api/constants.js';
import { DEFAULT_METRICS_CERT_DIR } from '../src/controller/cli/flags.js';
import { ControllerAdmissionPolicy } from './admission-policy.js';
import { ControllerRbac } from './rbac.js';
import { WorkerCrd } from './worker-crd.js';
import { WorkerPoolCrd } from './workerpool-crd.js';
import { checkInteger, checkLabelName, checkNonEmpty } from './validate.js';

export interface ControllerResources {
  /** @default "100m" */
  readonly cpuRequest?: string;
  /** @default "128Mi" */
  readonly memoryRequest?: string;
  /**
   * No CPU limit by default: scaling a pool out generates one RSA key per
   * worker and is CPU-bound, so throttling would only slow it down.
   * @default - none
   */
  readonly cpuLimit?: string;
  /** @default "512Mi" */
  readonly memoryLimit?: string;
}

export interface WorkerPoolControllerProps {
  /**
   * Controller image. No image is published: build the Dockerfile and push it.
   * @default "kube-workerpool-controller:0.1.0"
   */
  readonly image?: string;
  /** @default "IfNotPresent" */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
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
   * Watch only these namespaces (and get RBAC only in them).
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
  /**
   * Include the CustomResourceDefinitions.
   * @default true
   */
  readonly includeCrds?: boolean;
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
}

const CONTROLLER_UID = 65532;

export class WorkerPoolController extends Construct {
  public readonly namespace: string;
  public readonly serviceAccountName: string;
  public readonly deployment: k8s.KubeDeployment;
  public readonly metricsService?: k8s.KubeService;

  constructor(scope: Construct, id: string, props: WorkerPoolControllerProps = {}) {
    super(scope, id);
    const name = props.name ?? CONTROLLER_NAME;
    const namespace = props.namespace ?? DEFAULT_CONTROLLER_NAMESPACE;
    const image = props.image ?? 'kube-workerpool-controller:0.1.0';
    const replicas = props.replicas ?? 1;
    const leaderElect = props.leaderElect ?? true;
    const metricsPort = props.metricsPort ?? 8443;
    const metricsSecure = props.metricsSecure ?? true;
    const healthProbePort = props.healthProbePort ?? 8081;
    const watchNamespaces = props.watchNamespaces ?? [];

    checkLabelName('name', name);
    checkLabelName('namespace', namespace);
    for (const ns of watchNamespaces) checkLabelName('watchNamespaces[]', ns);
    checkNonEmpty('image', image);
    checkInteger('replicas', replicas, 1);
    checkInteger('metricsPort', metricsPort, 0, 65535);
    checkInteger('healthProbePort', healthProbePort, 1, 65535);
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

    this.namespace = namespace;
    this.serviceAccountName = name;
    const labels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/component': 'controller' };

    if (props.includeCrds ?? true) {
      new WorkerPoolCrd(this, 'WorkerPoolCrd');
      new WorkerCrd(this, 'WorkerCrd');
    }
    if (props.createNamespace ?? true) {
      new k8s.KubeNamespace(this, 'Namespace', { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    }
    new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata: { name, namespace, labels } });
    new ControllerRbac(this, 'Rbac', { name, namespace, serviceAccountName: name, watchNamespaces });
    if (props.admissionPolicy ?? true) {
      new ControllerAdmissionPolicy(this, 'AdmissionPolicy', { name: `${name}-managed-objects`, namespace, serviceAccountName: name });
    }

    const args = [
      `--metrics-bind-address=${metricsPort === 0 ? '0' : `:${metricsPort}`}`,
      `--metrics-secure=${metricsSecure}`,
      `--health-probe-bind-address=:${healthProbePort}`,
    ];
    if (metricsCertSecret !== undefined) args.push(`--metrics-cert-dir=${DEFAULT_METRICS_CERT_DIR}`);
    if (leaderElect) args.push('--leader-elect');
    if (watchNamespaces.length > 0) args.push(`--namespaces=${watchNamespaces.join(',')}`);

    const ports: k8s.ContainerPort[] = [{ name: 'health', containerPort: healthProbePort, protocol: 'TCP' }];
    if (metricsPort !== 0) ports.push({ name: 'metrics', containerPort: metricsPort, protocol: 'TCP' });

    const res = props.resources ?? {};
    const limits: Record<string, k8s.Quantity> = { memory: k8s.Quantity.fromString(res.memoryLimit ?? '512Mi') };
    if (res.cpuLimit !== undefined) limits.cpu = k8s.Quantity.fromString(res.cpuLimit);

    this.deployment = new k8s.KubeDeployment(this, 'Deployment', {
      metadata: { name, namespace, labels },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            terminationGracePeriodSeconds: 30,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: CONTROLLER_UID,
              runAsGroup: CONTROLLER_UID,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'manager',
                image,
                imagePullPolicy: props.imagePullPolicy ?? 'IfNotPresent',
                args,
                env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
                ports,
                ...(metricsCertSecret === undefined ? {} : { volumeMounts: [{ name: 'metrics-certs', mountPath: DEFAULT_METRICS_CERT_DIR, readOnly: true }] }),
                livenessProbe: { httpGet: { path: '/healthz', port: k8s.IntOrString.fromString('health') }, initialDelaySeconds: 15, periodSeconds: 20 },
                readinessProbe: { httpGet: { path: '/readyz', port: k8s.IntOrString.fromString('health') }, initialDelaySeconds: 5, periodSeconds: 10 },
                resources: {
                  requests: {
                    cpu: k8s.Quantity.fromString(res.cpuRequest ?? '100m'),
                    memory: k8s.Quantity.fromString(res.memoryRequest ?? '128Mi'),
                  },
                  limits,
                },
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
      },
    });

    if (metricsPort !== 0) {
      this.metricsService = new k8s.KubeService(this, 'MetricsService', {
        metadata: { name: `${name}-metrics`, namespace, labels },
        spec: {
          selector: labels,
          ports: [{ name: metricsSecure ? 'https' : 'http', port: metricsPort, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' }],
        },
      });
    }
  }
}
