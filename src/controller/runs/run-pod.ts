/**
 * The run Pod: what a schedule message becomes. {@link buildRunPod} is a pure
 * function of the pool, the Worker and the message, so that a redelivered
 * message produces the same Pod (same name: the API's `AlreadyExists` is the
 * idempotency check) and every field can be unit-tested.
 *
 * ## Shape
 *
 * ```
 * initContainers: <spec.pod.customInitContainers...>   user's, as given
 *                 init                                 launcher image, fills the workspace
 *                 launcher-grpc   restartPolicy=Always launcher image, native sidecar
 *                 <spec.pod.additionalSidecarContainers...> restartPolicy=Always, native sidecars
 * containers:     worker                               runner image, runs the run
 * restartPolicy:  Never
 * ```
 *
 * `launcher-grpc` and the additional sidecars are *native sidecars* (init
 * containers with `restartPolicy: Always`, on by default since Kubernetes
 * 1.29): the kubelet starts them before `worker`, keeps them running while it
 * runs, and stops them once `worker` has exited, so the Pod's phase is decided
 * by `worker` alone (`Succeeded` on exit 0, `Failed` otherwise). With plain
 * second containers the Pod would stay `Running` after the run ended until
 * something killed the server, and the run's outcome would be mixed up with
 * how the server died. Ordering them after `init` means the server starts on a
 * populated workspace.
 *
 * @module
 */
import type {
  V1Affinity,
  V1Container,
  V1EnvFromSource,
  V1EnvVar,
  V1HostAlias,
  V1LocalObjectReference,
  V1Pod,
  V1PodDNSConfig,
  V1PodSecurityContext,
  V1PodSpec,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Toleration,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  ANNOTATION_WORKER_NAME,
  API_GROUP_VERSION,
  BINARIES_CACHE_MOUNT_PATH,
  CONTAINER_INIT,
  CONTAINER_LAUNCHER_GRPC,
  CONTAINER_WORKER,
  FINALIZER_RUN_POD,
  LABEL_MANAGED_BY,
  LABEL_RUN_ID,
  LABEL_WORKER,
  LABEL_WORKERPOOL,
  MANAGED_BY_VALUE,
  RUN_POD_DISRUPTION_ANNOTATIONS,
  RUN_POD_UID,
  RUN_SCRIPT_MOUNT_PATH,
  RUN_SECRET_KEY_SCRIPT,
  WORKER_KIND,
  WORKSPACE_MOUNT_PATH,
} from '../../api/constants.js';
import type { ScheduleMessage } from '../../protocol/messages.js';
import type { WorkerPoolSpec } from '../../api/types.js';
import { controllerReference } from '../../runtime/owners.js';
import { checkRunnerImageAllowed } from './image-host.js';
import { ENV_LOGS_TIMEOUT, ENV_RUN_TIMEOUT, RunConfigError, resolveRunTimeouts } from './run-timeouts.js';

export { RunConfigError } from './run-timeouts.js';

/** Name of the Pod volume mounted at {@link WORKSPACE_MOUNT_PATH}. */
export const VOLUME_WORKSPACE = 'workspace';
/** Name of the Pod volume mounted at {@link BINARIES_CACHE_MOUNT_PATH}. */
export const VOLUME_BINARIES_CACHE = 'binaries-cache';
/** Name of the Pod volume mounted at {@link RUN_SCRIPT_MOUNT_PATH} in `init` (the run's Secret), when the run has a script. */
export const VOLUME_RUN_SCRIPT = 'run-script';

/** The phase part of run Pod names; one phase, the whole run, for now. */
export const RUN_POD_PHASE = 'run';

/**
 * Variables the controller sets on `init`, `launcher-grpc` and `worker`.
 * These names are this controller's contract with the launcher image: who the
 * run is for and where the shared directories are mounted.
 */
export const ENV_RUN_ID = 'SPACELIFT_RUN_ID';
export const ENV_WORKER_ID = 'SPACELIFT_WORKER_ID';
export const ENV_POOL_ID = 'SPACELIFT_POOL_ID';
export const ENV_WORKSPACE_PATH = 'SPACELIFT_WORKSPACE_PATH';
export const ENV_BINARIES_CACHE_PATH = 'SPACELIFT_BINARIES_CACHE_PATH';
/**
 * On `init`, when the run has a script: its SHA-256 (lowercase hex), as the
 * schedule message named it, so that init refuses any other script than the
 * run's, whatever the Secret it finds holds.
 */
export const ENV_SCRIPT_SHA256 = 'SPACELIFT_RUN_SCRIPT_SHA256';

/** The PATH `customBinariesPath` is prepended to (the usual Linux default, as in Debian and Alpine images). */
export const STANDARD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Neither the message nor `spec.pod.defaultRunnerImage` names a runner image. */
export class MissingRunnerImageError extends RunConfigError {
  constructor() {
    super(
      'spec.pod.defaultRunnerImage',
      undefined,
      'no runner image: the schedule message names none and the pool sets no spec.pod.defaultRunnerImage',
    );
    this.name = 'MissingRunnerImageError';
  }
}

/** The runner image is from a registry host outside `spec.allowedRunnerImageHosts`. */
export class RunnerImageNotAllowedError extends RunConfigError {
  constructor(image: string, reason: string) {
    super('spec.allowedRunnerImageHosts', image, reason);
    this.name = 'RunnerImageNotAllowedError';
  }
}

/** Two containers or two volumes of the Pod would have the same name; the API would reject the Pod. */
export class NameConflictError extends RunConfigError {
  constructor(field: string, name: string, what: string) {
    super(field, name, `${field} is named ${JSON.stringify(name)}, which ${what}`);
    this.name = 'NameConflictError';
  }
}

export interface RunPodInput {
  readonly pool: {
    readonly name: string;
    readonly namespace: string;
    readonly uid: string;
    readonly spec: WorkerPoolSpec;
    /** The backend's pool id. */
    readonly poolId: string;
  };
  readonly worker: {
    /** The Worker object's name (`<pool name>-<worker id>`). */
    readonly name: string;
    readonly uid: string;
    /** The backend's worker id (a lowercase ULID). */
    readonly workerId: string;
  };
  readonly schedule: ScheduleMessage;
  /**
   * Variables the worker container gets from the pool's `envFrom` sources (the
   * keys of those ConfigMaps and Secrets, with their prefixes): the message may
   * not set them, since `env` would win over `envFrom`.
   */
  readonly envFromNames?: readonly string[];
}

/**
 * Variables a run's environment from the backend may not set unless the pool
 * lists them in `spec.allowedRunEnvVars`: they change what runs (PATH, the
 * dynamic loader) or where the run's traffic goes (proxies). Compared
 * case-insensitively.
 */
export const PROTECTED_RUN_ENV: readonly string[] = [
  'PATH',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'LD_AUDIT',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'ALL_PROXY',
  'FTP_PROXY',
];

/** Whether the message's `env` may set `name` under this pool's spec. */
export function protectedRunEnv(name: string, allowed: readonly string[] | undefined): boolean {
  const upper = name.toUpperCase();
  if (!PROTECTED_RUN_ENV.includes(upper)) return false;
  return !(allowed ?? []).some((a) => a.toUpperCase() === upper);
}

/** What the pool may set on `init`, `launcher-grpc` and `worker`. */
interface ContainerSettings {
  readonly env: V1EnvVar[];
  readonly envFrom?: V1EnvFromSource[];
  readonly volumeMounts: V1VolumeMount[];
  readonly resources?: V1ResourceRequirements;
  readonly securityContext?: V1SecurityContext;
  readonly imagePullPolicy?: string;
}

/** `spec.pod` in client-node's model types: the one place the generated `any`s are given a type. */
interface PodSettings {
  readonly customInitContainers: V1Container[];
  readonly additionalSidecarContainers: V1Container[];
  readonly volumes: V1Volume[];
  readonly workspaceVolume?: V1Volume;
  readonly binariesCacheVolume?: V1Volume;
  readonly securityContext?: V1PodSecurityContext;
  readonly affinity?: V1Affinity;
  readonly dnsConfig?: V1PodDNSConfig;
  readonly tolerations?: V1Toleration[];
  readonly topologySpreadConstraints?: V1TopologySpreadConstraint[];
  readonly hostAliases?: V1HostAlias[];
  readonly imagePullSecrets?: V1LocalObjectReference[];
  readonly init: ContainerSettings;
  readonly grpc: ContainerSettings;
  readonly worker: ContainerSettings;
}

/** Resource quantities arrive as strings or numbers from the API, or as cdk8s wrappers `{ value }` when built in code. */
function quantities(m: unknown): Record<string, string> | undefined {
  if (m === undefined || m === null || typeof m !== 'object') return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
    const raw = typeof v === 'object' && v !== null && 'value' in v ? (v as { value: unknown }).value : v;
    if (typeof raw === 'string' || typeof raw === 'number') out[k] = String(raw);
  }
  return out;
}

function resources(r: unknown): V1ResourceRequirements | undefined {
  if (r === undefined || r === null || typeof r !== 'object') return undefined;
  const src = r as { limits?: unknown; requests?: unknown };
  const out: V1ResourceRequirements = {};
  const limits = quantities(src.limits);
  const requests = quantities(src.requests);
  if (limits !== undefined) out.limits = limits;
  if (requests !== undefined) out.requests = requests;
  return out;
}

interface RawContainerSettings {
  readonly env?: readonly unknown[];
  readonly envFrom?: readonly unknown[];
  readonly volumeMounts?: readonly unknown[];
  readonly resources?: unknown;
  readonly securityContext?: unknown;
  readonly imagePullPolicy?: string;
}

function containerSettings(raw: RawContainerSettings | undefined): ContainerSettings {
  const out: {
    env: V1EnvVar[];
    envFrom?: V1EnvFromSource[];
    volumeMounts: V1VolumeMount[];
    resources?: V1ResourceRequirements;
    securityContext?: V1SecurityContext;
    imagePullPolicy?: string;
  } = {
    env: structuredClone((raw?.env ?? []) as V1EnvVar[]),
    volumeMounts: structuredClone((raw?.volumeMounts ?? []) as V1VolumeMount[]),
  };
  if (raw?.envFrom !== undefined) out.envFrom = structuredClone(raw.envFrom as V1EnvFromSource[]);
  const res = resources(raw?.resources);
  if (res !== undefined) out.resources = res;
  if (raw?.securityContext !== undefined) out.securityContext = structuredClone(raw.securityContext as V1SecurityContext);
  if (raw?.imagePullPolicy !== undefined) out.imagePullPolicy = raw.imagePullPolicy;
  return out;
}

/** Deep copies, so that the Pod never aliases the (informer-cached) spec. */
function clone<T>(v: unknown): T | undefined {
  return v === undefined || v === null ? undefined : structuredClone(v as T);
}

function podSettings(spec: WorkerPoolSpec): PodSettings {
  const p = spec.pod;
  const out: { -readonly [K in keyof PodSettings]: PodSettings[K] } = {
    customInitContainers: clone<V1Container[]>(p?.customInitContainers) ?? [],
    additionalSidecarContainers: clone<V1Container[]>(p?.additionalSidecarContainers) ?? [],
    volumes: clone<V1Volume[]>(p?.volumes) ?? [],
    init: containerSettings(p?.initContainer),
    grpc: containerSettings(p?.grpcServerContainer),
    worker: containerSettings(p?.workerContainer),
  };
  const set = <K extends keyof PodSettings>(k: K, v: PodSettings[K] | undefined): void => {
    if (v !== undefined) out[k] = v;
  };
  set('workspaceVolume', clone<V1Volume>(p?.workspaceVolume));
  set('binariesCacheVolume', clone<V1Volume>(p?.binariesCacheVolume));
  set('securityContext', clone<V1PodSecurityContext>(p?.securityContext));
  set('affinity', clone<V1Affinity>(p?.affinity));
  set('dnsConfig', clone<V1PodDNSConfig>(p?.dnsConfig));
  set('tolerations', clone<V1Toleration[]>(p?.tolerations));
  set('topologySpreadConstraints', clone<V1TopologySpreadConstraint[]>(p?.topologySpreadConstraints));
  set('hostAliases', clone<V1HostAlias[]>(p?.hostAliases));
  set('imagePullSecrets', clone<V1LocalObjectReference[]>(p?.imagePullSecrets));
  return out;
}

/**
 * The run Pod's name: `<run id, lower-cased>-run-1`, after the documented
 * `<run id, lowercase>-<phase>-<n>`. Deterministic, so that a redelivered
 * schedule message finds the Pod already there instead of creating a second.
 * Run ids are at most 63 DNS-label characters (`RUN_ID_PATTERN`), so the name
 * is a valid DNS subdomain; ids that differ only in case (ULIDs are
 * case-insensitive) name the same Pod. The `run-id` label keeps the id as the
 * backend wrote it.
 */
export function runPodName(runId: string): string {
  return `${runId.toLowerCase()}-${RUN_POD_PHASE}-1`;
}

/**
 * The name of the run's Secret (its script): the run Pod's name. Secrets and
 * Pods have names of their own, and one name for both is what a person looks
 * for next to `kubectl get pod`.
 */
export function runSecretName(runId: string): string {
  return runPodName(runId);
}

/**
 * The runner image of a run: the message's, else `spec.pod.defaultRunnerImage`.
 *
 * @throws MissingRunnerImageError when neither names one
 */
export function resolveRunnerImage(spec: WorkerPoolSpec, schedule: Pick<ScheduleMessage, 'runnerImage'>): string {
  const fromMessage = schedule.runnerImage.trim();
  if (fromMessage !== '') return fromMessage;
  const fallback = spec.pod?.defaultRunnerImage?.trim() ?? '';
  if (fallback !== '') return fallback;
  throw new MissingRunnerImageError();
}

/** The launcher image of a run: `spec.pod.launcherImage` when the pool pins one, else the message's. */
export function resolveLauncherImage(spec: WorkerPoolSpec, schedule: Pick<ScheduleMessage, 'launcherImage'>): string {
  const pinned = spec.pod?.launcherImage?.trim() ?? '';
  return pinned !== '' ? pinned : schedule.launcherImage;
}

/**
 * `spec.allowedRunnerImageHosts` applies to every image of the run Pod that
 * the backend's message chose (the runner, and the launcher unless the pool
 * pins it): a compromised backend must not run an image of its choice with
 * the pool's mounts and `envFrom` Secrets. Images the pool's own spec sets
 * (`defaultRunnerImage`, `launcherImage`) are the pool owner's choice.
 */
function checkMessageImages(spec: WorkerPoolSpec, schedule: ScheduleMessage, runnerImage: string, launcherImage: string): void {
  const allowed = spec.allowedRunnerImageHosts;
  if (runnerImage === schedule.runnerImage.trim()) {
    const check = checkRunnerImageAllowed(runnerImage, allowed);
    if (!check.ok) throw new RunnerImageNotAllowedError(runnerImage, check.reason);
  }
  if (launcherImage === schedule.launcherImage && (spec.pod?.launcherImage?.trim() ?? '') === '') {
    const check = checkRunnerImageAllowed(launcherImage, allowed, 'launcher image');
    if (!check.ok) throw new RunnerImageNotAllowedError(launcherImage, check.reason);
  }
}

/** Pod security defaults, used unless `spec.pod.securityContext` replaces them as a whole. */
export function defaultPodSecurityContext(): V1PodSecurityContext {
  return {
    runAsUser: RUN_POD_UID,
    runAsGroup: RUN_POD_UID,
    fsGroup: RUN_POD_UID,
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * Container security defaults of `init`, `launcher-grpc` and `worker`, unless
 * the matching `spec.pod.*Container.securityContext` replaces them as a whole.
 * Not applied to the user's custom init and sidecar containers: those are
 * entirely the user's (a Docker daemon sidecar is privileged by choice).
 */
export function defaultContainerSecurityContext(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  };
}

/**
 * `ours` followed by `theirs`, where an entry of `theirs` replaces the entry of
 * `ours` with the same name (it is appended in its own position, so it may
 * still refer to earlier variables with `$(NAME)`). No name appears twice.
 */
function overrideEnv(ours: readonly V1EnvVar[], theirs: readonly V1EnvVar[]): V1EnvVar[] {
  const taken = new Set(theirs.map((e) => e.name));
  return [...ours.filter((e) => !taken.has(e.name)), ...theirs];
}

function container(
  name: string,
  image: string,
  settings: ContainerSettings,
  env: readonly V1EnvVar[],
  mounts: readonly V1VolumeMount[],
  restartPolicy?: 'Always',
): V1Container {
  const c: V1Container = { name, image };
  if (settings.imagePullPolicy !== undefined) c.imagePullPolicy = settings.imagePullPolicy;
  if (restartPolicy !== undefined) c.restartPolicy = restartPolicy;
  c.env = overrideEnv(env, settings.env);
  if (settings.envFrom !== undefined) c.envFrom = settings.envFrom;
  if (settings.resources !== undefined) c.resources = settings.resources;
  c.securityContext = settings.securityContext ?? defaultContainerSecurityContext();
  c.volumeMounts = [...mounts, ...settings.volumeMounts];
  return c;
}

/** Names the API would reject as duplicates, found before the API does so the run fails with a clear reason. */
function checkNames(
  ours: readonly string[],
  items: readonly { name?: string }[],
  field: string,
  kind: string,
  seen: Set<string>,
): void {
  items.forEach((item, i) => {
    const name = item.name ?? '';
    if (ours.includes(name)) throw new NameConflictError(`${field}[${i}].name`, name, `is the name of the controller's own ${kind}`);
    if (seen.has(name)) throw new NameConflictError(`${field}[${i}].name`, name, `is already the name of another ${kind} of the run Pod`);
    seen.add(name);
  });
}

/**
 * Builds the run Pod of a schedule message.
 *
 * **Metadata.** Name from {@link runPodName}; the pool's namespace; owned by
 * the Worker (`controller: true`, `blockOwnerDeletion: true`), so deleting the
 * Worker collects it. Labels: `spec.pod.labels`, then ours, which win on a
 * conflict: `workers.spacelift.io/run-id=<run id as sent>`,
 * `workers.spacelift.io/worker=<worker id>`,
 * `workers.spacelift.io/workerpool=<pool id>`,
 * `app.kubernetes.io/managed-by=kube-workerpool-controller`. Annotations:
 * the voluntary-disruption guards (`cluster-autoscaler.kubernetes.io/safe-to-evict:
 * "false"`, `karpenter.sh/do-not-disrupt: "true"`), then `spec.pod.annotations`,
 * which may override them, plus `workers.spacelift.io/worker-name=<Worker name>`.
 * The finalizer `workers.spacelift.io/report-run` is set at creation, so the
 * Pod cannot disappear before its outcome is reported; the reconciler removes
 * it once the backend has the result.
 *
 * **Images.** `init` and `launcher-grpc`: {@link resolveLauncherImage};
 * `worker`: {@link resolveRunnerImage}, checked against
 * `spec.allowedRunnerImageHosts` (defence in depth: the reconciler may check
 * first to fail early, but no Pod with a disallowed image can be built).
 *
 * **Volumes.** `workspace` (mounted at `/opt/spacelift/workspace` in `init`,
 * `launcher-grpc` and `worker`) and `binaries-cache` (at
 * `/opt/spacelift/binaries_cache` in `init` and `worker`), `emptyDir` unless
 * `spec.pod.workspaceVolume` / `binariesCacheVolume` give a volume source (its
 * `name` is replaced by ours); for a run with a script, `run-script`: the
 * run's Secret ({@link runSecretName}, made by the schedule handler), its key
 * `script` mounted read-only at `/opt/spacelift/run/script` in `init` alone,
 * which also gets `SPACELIFT_RUN_SCRIPT_SHA256`; then `spec.pod.volumes`.
 *
 * **Environment.** `init`, `launcher-grpc` and `worker` get
 * `SPACELIFT_RUN_ID`, `SPACELIFT_WORKER_ID`, `SPACELIFT_POOL_ID`,
 * `SPACELIFT_WORKSPACE_PATH` and `SPACELIFT_BINARIES_CACHE_PATH`. `worker`
 * then gets, in this order: the message's `env` (the run's environment), the
 * timeout variables of {@link resolveRunTimeouts}, `PATH` when
 * `customBinariesPath` is set, and last the pool's `workerContainer.env`.
 * Precedence, highest first:
 * 1. the pool's `*Container.env` (the cluster owner's settings: proxies, CA
 *    bundles, credentials from Secrets), which also overrides the
 *    controller's own variables, as the pool owner may need to;
 * 2. the controller's variables (identity, paths, timeouts, PATH);
 * 3. the message's `env`.
 * The message comes from the backend and carries stack settings written by
 * people who need not be trusted with the cluster: it must not be able to
 * replace what the pool owner configured, the run's identity, or the timeouts
 * (the message has its own `timeouts` field, and the Pod deadline must agree
 * with the variable), so message entries with those names are dropped.
 * Limitation: names that arrive through the pool's `envFrom` cannot be seen
 * here, and Kubernetes lets any `env` entry, the message's included, win over
 * `envFrom`; pool settings that must not be overridden belong in `env`.
 *
 * **PATH.** With `spec.pod.customBinariesPath = D`, `worker` gets
 * `PATH=D:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`. This
 * replaces the image's PATH (Kubernetes cannot append to an image's variable)
 * with the standard one prefixed, so tools an image keeps elsewhere must be
 * on that standard PATH or in D.
 *
 * **Security.** Pod: `spec.pod.securityContext`, else UID/GID/fsGroup 1983,
 * `runAsNonRoot`, `seccompProfile: RuntimeDefault`. `init`, `launcher-grpc`,
 * `worker`: their `securityContext` override, else no privilege escalation,
 * not privileged, all capabilities dropped. User containers are left as given.
 * `automountServiceAccountToken` defaults to false: the run talks to the
 * launcher, not to the Kubernetes API, and a run executes user code that
 * should not hold a cluster credential unless the pool owner asks for one.
 *
 * Every other `spec.pod` field (`terminationGracePeriodSeconds`,
 * `serviceAccountName`, `imagePullSecrets`, `nodeSelector`, `nodeName`,
 * `affinity`, `schedulerName`, `tolerations`, `hostAliases`, `dnsConfig`,
 * `dnsPolicy`, `runtimeClassName`, `topologySpreadConstraints`,
 * `shareProcessNamespace`) is copied as given; `activeDeadlineSeconds` comes
 * from {@link resolveRunTimeouts}.
 *
 * @throws RunConfigError (or a subclass: {@link MissingRunnerImageError},
 *   {@link RunnerImageNotAllowedError}, {@link NameConflictError},
 *   `InvalidTimeoutError`) when the run cannot have a Pod; report the run
 *   `failed` with the error's message.
 */
export function buildRunPod(input: RunPodInput): V1Pod {
  const { pool, worker, schedule } = input;
  const spec = pool.spec;
  const podSpec = spec.pod;
  const settings = podSettings(spec);

  const runnerImage = resolveRunnerImage(spec, schedule);
  const launcherImage = resolveLauncherImage(spec, schedule);
  checkMessageImages(spec, schedule, runnerImage, launcherImage);
  const timeouts = resolveRunTimeouts(spec, schedule.timeouts);

  const ourContainers = [CONTAINER_INIT, CONTAINER_LAUNCHER_GRPC, CONTAINER_WORKER];
  const containerNames = new Set<string>();
  checkNames(ourContainers, settings.customInitContainers, 'spec.pod.customInitContainers', 'container', containerNames);
  checkNames(ourContainers, settings.additionalSidecarContainers, 'spec.pod.additionalSidecarContainers', 'container', containerNames);
  checkNames([VOLUME_WORKSPACE, VOLUME_BINARIES_CACHE, VOLUME_RUN_SCRIPT], settings.volumes, 'spec.pod.volumes', 'volume', new Set());

  // --- environment --------------------------------------------------------
  const common: V1EnvVar[] = [
    { name: ENV_RUN_ID, value: schedule.runId },
    { name: ENV_WORKER_ID, value: worker.workerId },
    { name: ENV_POOL_ID, value: pool.poolId },
    { name: ENV_WORKSPACE_PATH, value: WORKSPACE_MOUNT_PATH },
    { name: ENV_BINARIES_CACHE_PATH, value: BINARIES_CACHE_MOUNT_PATH },
  ];
  const controllerWorkerEnv: V1EnvVar[] = [...timeouts.env];
  const customPath = podSpec?.customBinariesPath?.trim() ?? '';
  if (customPath !== '') controllerWorkerEnv.push({ name: 'PATH', value: `${customPath}:${STANDARD_PATH}` });
  const reserved = new Set<string>([
    ...common.map((e) => e.name),
    ...controllerWorkerEnv.map((e) => e.name),
    ENV_RUN_TIMEOUT,
    ENV_LOGS_TIMEOUT,
    ...settings.worker.env.map((e) => e.name),
    ...(input.envFromNames ?? []),
  ]);
  const messageEnv: V1EnvVar[] = Object.entries(schedule.env)
    .filter(([name]) => !reserved.has(name) && !protectedRunEnv(name, spec.allowedRunEnvVars))
    .map(([name, value]) => ({ name, value }));
  // The timeout variables the pool set with a literal value were inputs of resolveRunTimeouts; its result replaces them.
  const consumed = new Set(timeouts.env.map((e) => e.name));
  const workerSettings: ContainerSettings = { ...settings.worker, env: settings.worker.env.filter((e) => !consumed.has(e.name)) };

  // --- containers ---------------------------------------------------------
  const workspaceMount: V1VolumeMount = { name: VOLUME_WORKSPACE, mountPath: WORKSPACE_MOUNT_PATH };
  const cacheMount: V1VolumeMount = { name: VOLUME_BINARIES_CACHE, mountPath: BINARIES_CACHE_MOUNT_PATH };

  const script = schedule.script;
  const scriptMount: V1VolumeMount = { name: VOLUME_RUN_SCRIPT, mountPath: RUN_SCRIPT_MOUNT_PATH, readOnly: true };
  const init = container(
    CONTAINER_INIT,
    launcherImage,
    settings.init,
    script === undefined ? common : [...common, { name: ENV_SCRIPT_SHA256, value: script.sha256 }],
    script === undefined ? [workspaceMount, cacheMount] : [workspaceMount, cacheMount, scriptMount],
  );
  const grpc = container(CONTAINER_LAUNCHER_GRPC, launcherImage, settings.grpc, common, [workspaceMount], 'Always');
  const workerContainer = container(
    CONTAINER_WORKER,
    runnerImage,
    workerSettings,
    [...common, ...messageEnv, ...controllerWorkerEnv],
    [workspaceMount, cacheMount],
  );
  // Native sidecars: stopped by the kubelet once `worker` exits, whatever the user wrote.
  const sidecars = settings.additionalSidecarContainers.map((c) => ({ ...c, restartPolicy: 'Always' }));

  // --- volumes --------------------------------------------------------------
  const volumes: V1Volume[] = [
    { ...(settings.workspaceVolume ?? { emptyDir: {} }), name: VOLUME_WORKSPACE },
    { ...(settings.binariesCacheVolume ?? { emptyDir: {} }), name: VOLUME_BINARIES_CACHE },
    ...(script === undefined
      ? []
      : [{ name: VOLUME_RUN_SCRIPT, secret: { secretName: runSecretName(schedule.runId), items: [{ key: RUN_SECRET_KEY_SCRIPT, path: RUN_SECRET_KEY_SCRIPT }], defaultMode: 0o444 } }]),
    ...settings.volumes,
  ];

  // --- pod spec -----------------------------------------------------------
  const out: V1PodSpec = {
    restartPolicy: 'Never',
    initContainers: [...settings.customInitContainers, init, grpc, ...sidecars],
    containers: [workerContainer],
    volumes,
    securityContext: settings.securityContext ?? defaultPodSecurityContext(),
    automountServiceAccountToken: podSpec?.automountServiceAccountToken ?? false,
  };
  if (timeouts.activeDeadlineSeconds !== undefined) out.activeDeadlineSeconds = timeouts.activeDeadlineSeconds;
  if (podSpec?.terminationGracePeriodSeconds !== undefined) out.terminationGracePeriodSeconds = podSpec.terminationGracePeriodSeconds;
  if (podSpec?.serviceAccountName !== undefined) out.serviceAccountName = podSpec.serviceAccountName;
  if (settings.imagePullSecrets !== undefined) out.imagePullSecrets = settings.imagePullSecrets;
  if (podSpec?.nodeSelector !== undefined) out.nodeSelector = { ...podSpec.nodeSelector };
  if (podSpec?.nodeName !== undefined) out.nodeName = podSpec.nodeName;
  if (settings.affinity !== undefined) out.affinity = settings.affinity;
  if (podSpec?.schedulerName !== undefined) out.schedulerName = podSpec.schedulerName;
  if (settings.tolerations !== undefined) out.tolerations = settings.tolerations;
  if (settings.hostAliases !== undefined) out.hostAliases = settings.hostAliases;
  if (settings.dnsConfig !== undefined) out.dnsConfig = settings.dnsConfig;
  if (podSpec?.dnsPolicy !== undefined) out.dnsPolicy = podSpec.dnsPolicy;
  if (podSpec?.runtimeClassName !== undefined) out.runtimeClassName = podSpec.runtimeClassName;
  if (settings.topologySpreadConstraints !== undefined) out.topologySpreadConstraints = settings.topologySpreadConstraints;
  if (podSpec?.shareProcessNamespace !== undefined) out.shareProcessNamespace = podSpec.shareProcessNamespace;

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: runPodName(schedule.runId),
      namespace: pool.namespace,
      labels: {
        ...podSpec?.labels,
        [LABEL_RUN_ID]: schedule.runId,
        [LABEL_WORKER]: worker.workerId,
        [LABEL_WORKERPOOL]: pool.poolId,
        [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
      },
      annotations: { ...RUN_POD_DISRUPTION_ANNOTATIONS, ...podSpec?.annotations, [ANNOTATION_WORKER_NAME]: worker.name },
      ownerReferences: [controllerReference({ apiVersion: API_GROUP_VERSION, kind: WORKER_KIND, metadata: worker })],
      finalizers: [FINALIZER_RUN_POD],
    },
    spec: out,
  };
}
