/**
 * The WorkerPool CustomResourceDefinition, schema written in code.
 * Field names follow the product documentation so its commands work verbatim.
 */
import { Construct } from 'constructs';
import type { ApiObject } from 'cdk8s';
import { customResourceDefinition } from './crd.js';
import {
  BINARIES_CACHE_MOUNT_PATH,
  WORKERPOOL_KIND,
  WORKERPOOL_PLURAL,
  WORKERPOOL_SINGULAR,
  WORKSPACE_MOUNT_PATH,
} from '../src/constants.js';
import { arr, bool, conditions, duration, embedded, int, obj, Schema, str, stringMap } from './schema.js';

const QUANTITY: Schema = {
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  'x-kubernetes-int-or-string': true,
  pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
};

function secretKeyRef(what: string): Schema {
  return obj(
    `Where ${what} is read from.`,
    {
      secretKeyRef: obj(
        `The Secret key that holds ${what}. The Secret must be in the WorkerPool's namespace.`,
        {
          name: str('Name of the Secret.', { minLength: 1, maxLength: 253 }),
          key: str('Key in the Secret.', { minLength: 1, maxLength: 253 }),
        },
        { required: ['name', 'key'] },
      ),
    },
    { required: ['secretKeyRef'] },
  );
}

const resources = obj('Compute resources of the container (requests and limits).', {
  limits: { type: 'object', description: 'Maximum amount of each resource, e.g. cpu: "2", memory: 4Gi.', additionalProperties: QUANTITY },
  requests: { type: 'object', description: 'Amount of each resource the scheduler reserves.', additionalProperties: QUANTITY },
});

function containerOverrides(which: string): Schema {
  return obj(`Settings applied to the ${which} container of every run Pod.`, {
    env: arr(
      'Environment variables added to the container.',
      embedded('An EnvVar, as in a Pod spec.'),
    ),
    envFrom: arr('Sources of environment variables (ConfigMaps, Secrets).', embedded('An EnvFromSource, as in a Pod spec.')),
    volumeMounts: arr(
      'Volumes mounted into the container (name one of spec.pod.volumes).',
      embedded('A VolumeMount, as in a Pod spec.'),
    ),
    resources,
    securityContext: embedded('A SecurityContext replacing the default one (non-root UID/GID 1983, no privilege escalation).'),
    imagePullPolicy: str('When to pull the image.', { enum: ['Always', 'IfNotPresent', 'Never'] }),
  });
}

function container(role: string): Schema {
  return embedded(`A Container, as in a Pod spec: ${role}.`);
}

const volume = (what: string): Schema =>
  embedded(`A Volume, as in a Pod spec: ${what}. Its name is set by the controller.`);

const podSpec = obj('Settings of the run Pods this pool creates.', {
  activeDeadlineSeconds: int(
    'Run timeout: the Pod is stopped this many seconds after it starts. When set and the worker container has no SPACELIFT_LAUNCHER_RUN_TIMEOUT, that variable is derived from it (and the other way round).',
    { minimum: 1 },
  ),
  terminationGracePeriodSeconds: int('Seconds a stopped run is given to finish before it is killed.', { minimum: 0 }),
  launcherImage: str('Pins the launcher image of the init and launcher-grpc containers; by default the backend chooses it for each run.'),
  defaultRunnerImage: str("Runner image used when a run's stack sets none."),
  customBinariesPath: str('A directory put first on the worker container\'s PATH, for tools baked into a custom runner image.'),
  initContainer: containerOverrides('init'),
  grpcServerContainer: containerOverrides('launcher-grpc'),
  workerContainer: containerOverrides('worker'),
  customInitContainers: arr('Init containers run before the init container.', container('runs before init')),
  additionalSidecarContainers: arr(
    'Containers run next to the worker (for example a Docker daemon) and terminated when the run ends.',
    container('a sidecar'),
  ),
  workspaceVolume: volume(`holds the run's workspace, mounted at ${WORKSPACE_MOUNT_PATH}; default emptyDir`),
  binariesCacheVolume: volume(`caches tool binaries, mounted at ${BINARIES_CACHE_MOUNT_PATH}; default emptyDir`),
  volumes: arr(
    'Extra volumes of the run Pod, to mount with the containers\' volumeMounts.',
    embedded('A Volume, as in a Pod spec.'),
  ),
  serviceAccountName: str('ServiceAccount the run Pod runs as.'),
  automountServiceAccountToken: bool("Whether the ServiceAccount's token is mounted into the run Pod."),
  securityContext: embedded('A PodSecurityContext replacing the default one (runAsUser/runAsGroup/fsGroup 1983, runAsNonRoot).'),
  imagePullSecrets: arr(
    'Secrets used to pull the images of the run Pod.',
    obj('A reference to a Secret.', { name: str('Name of the Secret.', { minLength: 1 }) }, { required: ['name'] }),
  ),
  nodeSelector: stringMap('Labels a node must have to run the Pod.'),
  nodeName: str('Runs the Pod on this node, bypassing the scheduler.'),
  affinity: embedded('An Affinity, as in a Pod spec.'),
  schedulerName: str('Scheduler that places the Pod.'),
  tolerations: arr('Tolerations of the run Pod.', embedded('A Toleration, as in a Pod spec.')),
  hostAliases: arr(
    'Entries added to the Pod\'s /etc/hosts.',
    obj('A host alias.', { ip: str('IP address.'), hostnames: arr('Host names for the IP.', str('A host name.')) }, { required: ['ip'] }),
  ),
  dnsConfig: embedded('A PodDNSConfig, as in a Pod spec.'),
  dnsPolicy: str('DNS policy of the Pod.', { enum: ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None'] }),
  runtimeClassName: str('RuntimeClass of the Pod.'),
  topologySpreadConstraints: arr('How run Pods spread across the cluster.', embedded('A TopologySpreadConstraint, as in a Pod spec.')),
  labels: stringMap('Labels added to every run Pod.'),
  annotations: stringMap('Annotations added to every run Pod.'),
  shareProcessNamespace: bool('Whether the containers of a run Pod share one process namespace.'),
});

export const WORKERPOOL_SPEC_SCHEMA: Schema = obj(
  'The desired state of a pool of workers.',
  {
    poolSize: int('Number of workers registered with the backend. Idle workers use no Pods.', { minimum: 0, default: 1 }),
    token: secretKeyRef('the pool token (the base64 pool configuration, as downloaded)'),
    privateKey: secretKeyRef('the pool private key (the PEM file, base64-encoded once more)'),
    keepSuccessfulPods: bool('Keep the Pods of successful runs instead of deleting them when the run ends (subject to successfulPodsHistoryLimit and successfulPodsHistoryTTL when set).'),
    successfulPodsHistoryLimit: int('How many finished successful run Pods to keep per worker; the newest are kept. Default: 0, or no limit while keepSuccessfulPods is true or successfulPodsHistoryTTL is set.', { minimum: 0 }),
    failedPodsHistoryLimit: int('How many failed run Pods to keep per worker; the newest are kept. Default: 5, or no limit when failedPodsHistoryTTL is set.', { minimum: 0 }),
    successfulPodsHistoryTTL: duration('How long a successful run Pod is kept after it ends.'),
    failedPodsHistoryTTL: duration('How long a failed run Pod is kept after it ends.'),
    allowedRunnerImageHosts: arr(
      'Registry hosts runner images may come from; a run whose image is from another host fails without a Pod. Empty allows every host.',
      str('A registry host, e.g. "public.ecr.aws" or "registry.example.com:5000".', {
        pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$',
      }),
    ),
    pod: podSpec,
  },
  {
    'x-kubernetes-validations': [
      {
        rule: 'has(self.token) == has(self.privateKey)',
        // No fieldPath: the message names both fields, and fieldPath needs Kubernetes 1.28.
        message: 'spec.token and spec.privateKey must be set together (both secretKeyRefs, or neither)',
      },
    ],
  },
);

const WORKERPOOL_STATUS_SCHEMA: Schema = obj('The observed state of the pool, written by the controller.', {
  poolId: str('The backend\'s id of the pool, read from its token.'),
  desiredPoolSize: int('The poolSize the controller is working towards.'),
  actualPoolSize: int('Workers registered with the backend and connected. Absent while the credentials cannot be used.'),
  busyWorkers: int('Workers running a run.'),
  idleWorkers: int('Registered, connected workers waiting for a run.'),
  selector: str('Label selector of the pool\'s Workers, for the scale subresource (HPA, KEDA).'),
  observedGeneration: { type: 'integer', format: 'int64', description: 'The generation of the spec this status was computed from.' },
  conditions: conditions('Ready, CredentialsValid and PodTemplateValid, with reasons.'),
});

/** Worker names are `<pool name>-<26-character worker id>` and must stay a valid object name (253). */
export const MAX_POOL_NAME_LENGTH = 226;

export class WorkerPoolCrd extends Construct {
  public readonly resource: ApiObject;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.resource = customResourceDefinition(this, 'Resource', {
      kind: WORKERPOOL_KIND,
      plural: WORKERPOOL_PLURAL,
      singular: WORKERPOOL_SINGULAR,
      description: 'A pool of workers registered with the run scheduler; each scheduled run gets its own Pod.',
      spec: WORKERPOOL_SPEC_SCHEMA,
      status: WORKERPOOL_STATUS_SCHEMA,
      validations: [
        {
          rule: `size(self.metadata.name) <= ${MAX_POOL_NAME_LENGTH}`,
          message: `metadata.name must be at most ${MAX_POOL_NAME_LENGTH} characters, so that worker names (<pool name>-<worker id>) stay valid`,
        },
      ],
      subresources: {
        status: {},
        scale: { specReplicasPath: '.spec.poolSize', statusReplicasPath: '.status.actualPoolSize', labelSelectorPath: '.status.selector' },
      },
      printerColumns: [
        { name: 'Desired Pool Size', type: 'integer', jsonPath: '.status.desiredPoolSize', description: 'The poolSize the controller is working towards.' },
        { name: 'Actual Pool Size', type: 'integer', jsonPath: '.status.actualPoolSize', description: 'Workers registered and connected.' },
        { name: 'Busy', type: 'integer', jsonPath: '.status.busyWorkers', description: 'Workers running a run.' },
        { name: 'Idle', type: 'integer', jsonPath: '.status.idleWorkers', description: 'Workers waiting for a run.' },
        { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      ],
    });
  }
}
