/**
 * The WorkerPool kind's schema, written in code. Field names follow the
 * product documentation so its commands work verbatim. The CRD (constructs),
 * the controller's types and the cdk8s props all come from these definitions.
 */
import type { k8s } from 'cdk8s-plus-28';
import { BINARIES_CACHE_MOUNT_PATH, WORKSPACE_MOUNT_PATH } from './constants.js';
import { arr, bool, conditions, duration, embedded, int, int64, intOrPercent, obj, oneOf, quantityMap, str, stringMap, type PropsOf, type WireOf } from './schema.js';

function secretKeyRef(what: string) {
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
  limits: quantityMap('Maximum amount of each resource, e.g. cpu: "2", memory: 4Gi.'),
  requests: quantityMap('Amount of each resource the scheduler reserves.'),
});

function containerOverrides(which: string) {
  return obj(`Settings applied to the ${which} container of every run Pod.`, {
    env: arr(
      'Environment variables added to the container.',
      embedded<k8s.EnvVar>('An EnvVar, as in a Pod spec.'),
    ),
    envFrom: arr('Sources of environment variables (ConfigMaps, Secrets).', embedded<k8s.EnvFromSource>('An EnvFromSource, as in a Pod spec.')),
    volumeMounts: arr(
      'Volumes mounted into the container (name one of spec.pod.volumes).',
      embedded<k8s.VolumeMount>('A VolumeMount, as in a Pod spec.'),
    ),
    resources,
    securityContext: embedded<k8s.SecurityContext>('A SecurityContext replacing the default one (non-root UID/GID 1983, no privilege escalation).'),
    imagePullPolicy: oneOf('When to pull the image.', ['Always', 'IfNotPresent', 'Never']),
  });
}

function container(role: string) {
  return embedded<k8s.Container>(`A Container, as in a Pod spec: ${role}.`);
}

const volume = (what: string) =>
  embedded<k8s.Volume>(`A Volume, as in a Pod spec: ${what}. Its name is set by the controller.`);

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
    embedded<k8s.Volume>('A Volume, as in a Pod spec.'),
  ),
  serviceAccountName: str('ServiceAccount the run Pod runs as.'),
  automountServiceAccountToken: bool("Whether the ServiceAccount's token is mounted into the run Pod."),
  securityContext: embedded<k8s.PodSecurityContext>('A PodSecurityContext replacing the default one (runAsUser/runAsGroup/fsGroup 1983, runAsNonRoot).'),
  imagePullSecrets: arr(
    'Secrets used to pull the images of the run Pod.',
    obj('A reference to a Secret.', { name: str('Name of the Secret.', { minLength: 1 }) }, { required: ['name'] }),
  ),
  nodeSelector: stringMap('Labels a node must have to run the Pod.'),
  nodeName: str('Runs the Pod on this node, bypassing the scheduler.'),
  affinity: embedded<k8s.Affinity>('An Affinity, as in a Pod spec.'),
  schedulerName: str('Scheduler that places the Pod.'),
  tolerations: arr('Tolerations of the run Pod.', embedded<k8s.Toleration>('A Toleration, as in a Pod spec.')),
  hostAliases: arr(
    'Entries added to the Pod\'s /etc/hosts.',
    obj('A host alias.', { ip: str('IP address.'), hostnames: arr('Host names for the IP.', str('A host name.')) }, { required: ['ip'] }),
  ),
  dnsConfig: embedded<k8s.PodDnsConfig>('A PodDNSConfig, as in a Pod spec.'),
  dnsPolicy: oneOf('DNS policy of the Pod.', ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None']),
  runtimeClassName: str('RuntimeClass of the Pod.'),
  topologySpreadConstraints: arr('How run Pods spread across the cluster.', embedded<k8s.TopologySpreadConstraint>('A TopologySpreadConstraint, as in a Pod spec.')),
  labels: stringMap('Labels added to every run Pod.'),
  annotations: stringMap('Annotations added to every run Pod.'),
  shareProcessNamespace: bool('Whether the containers of a run Pod share one process namespace.'),
  disruptionBudget: obj(
    'A PodDisruptionBudget over this pool\'s run Pods, made and kept by the controller, so that kubectl drain, node upgrades and autoscalers wait for runs to end instead of evicting them. Absent: no budget (the Pods still carry the cluster-autoscaler and Karpenter do-not-disrupt annotations).',
    {
      maxUnavailable: intOrPercent('How many run Pods of the pool may be evicted at once, a number or a percentage. Default 0: none.', { default: 0 }),
    },
  ),
});

const autoscaling = obj(
  'Sizes the pool to the backend\'s demand (its busy workers plus its pending runs), between minPoolSize and maxPoolSize, instead of spec.poolSize: up at once when runs wait, down only after scaleDownDelay of lower demand, and never by taking a busy worker. The controller writes its decision to status.autoscaling, never to spec, so a GitOps tool that owns the spec has nothing to fight over; spec.poolSize (and kubectl scale) is ignored while this is set.',
  {
    minPoolSize: int('Fewest workers, also when no run waits. 0 lets an idle pool cost nothing.', { minimum: 0 }),
    maxPoolSize: int('Most workers, however many runs wait.', { minimum: 1 }),
    scaleDownDelay: duration('How long demand must stay below the pool\'s size before it shrinks (to the highest demand seen meanwhile); a run arriving meanwhile cancels it. Default "5m".'),
  },
  {
    required: ['minPoolSize', 'maxPoolSize'],
    'x-kubernetes-validations': [
      {
        rule: 'self.minPoolSize <= self.maxPoolSize',
        // format() (Kubernetes 1.29+): string concatenation of the values costs the schema more than the API server allows.
        messageExpression: "'spec.autoscaling.minPoolSize (%d) must not be greater than spec.autoscaling.maxPoolSize (%d)'.format([self.minPoolSize, self.maxPoolSize])",
        message: 'spec.autoscaling.minPoolSize must not be greater than spec.autoscaling.maxPoolSize',
      },
    ],
  },
);

export const WORKERPOOL_SPEC_SCHEMA = obj(
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
      'Registry hosts the images chosen by the backend may come from (the runner image, and the launcher image unless spec.pod.launcherImage pins one); a run whose image is from another host fails without a Pod. Images set in this spec are not checked. Empty allows every host.',
      str('A registry host, e.g. "public.ecr.aws" or "registry.example.com:5000".', {
        pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$',
      }),
    ),
    allowedRunEnvVars: arr(
      'Protected variables a run\'s environment from the backend may set in the worker container: PATH, LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY, FTP_PROXY (any case). By default the backend sets none of them.',
      str('A variable name.', { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
    ),
    pod: podSpec,
    autoscaling,
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

export const WORKERPOOL_STATUS_SCHEMA = obj('The observed state of the pool, written by the controller.', {
  poolId: str('The backend\'s id of the pool, read from its token.'),
  desiredPoolSize: int('The pool size the controller is working towards: spec.poolSize, or the autoscaler\'s recommendation.'),
  actualPoolSize: int('Workers registered with the backend and connected. Absent while the credentials cannot be used.'),
  busyWorkers: int('Workers running a run.'),
  idleWorkers: int('Registered, connected workers waiting for a run.'),
  selector: str('Label selector of the pool\'s Workers, for the scale subresource (HPA, KEDA).'),
  observedGeneration: int64('The generation of the spec this status was computed from.'),
  conditions: conditions('Ready, CredentialsValid, PodTemplateValid and Autoscaling, with reasons.'),
  autoscaling: obj('What the autoscaler saw and decided (with spec.autoscaling set). Kept here so a restarted controller goes on where it was.', {
    recommendation: int('The pool size the autoscaler asks for.'),
    pendingRuns: int('Runs waiting in the backend for this pool, when last read.'),
    busyWorkers: int('Workers with a run, as the backend saw them when last read.'),
    scaleDownPendingSince: str('Since when demand has stayed below the recommendation; the pool shrinks once scaleDownDelay has passed.', { format: 'date-time' }),
    scaleDownTarget: int('The size the pending scale-down goes to: the highest demand seen since scaleDownPendingSince.'),
    lastScaleTime: str('When the recommendation last changed.', { format: 'date-time' }),
  }),
});

/** Worker names are `<pool name>-<26-character worker id>` and must stay a valid object name (253). */
export const MAX_POOL_NAME_LENGTH = 226;

/** Rules on the whole WorkerPool object (CEL). */
export const WORKERPOOL_VALIDATIONS = [
  {
    rule: `size(self.metadata.name) <= ${MAX_POOL_NAME_LENGTH}`,
    message: `metadata.name must be at most ${MAX_POOL_NAME_LENGTH} characters, so that worker names (<pool name>-<worker id>) stay valid`,
  },
] as const;

/** A WorkerPool's spec as the API server serves it. */
export type WorkerPoolSpec = WireOf<typeof WORKERPOOL_SPEC_SCHEMA>;
/** A WorkerPool's spec as a cdk8s app writes it (cdk8s-plus `k8s` types for embedded objects). */
export type WorkerPoolSpecProps = PropsOf<typeof WORKERPOOL_SPEC_SCHEMA>;
export type WorkerPoolStatus = WireOf<typeof WORKERPOOL_STATUS_SCHEMA>;
/** Settings of a pool's run Pods (`spec.pod`). */
export type RunPodSettings = NonNullable<WorkerPoolSpec['pod']>;
