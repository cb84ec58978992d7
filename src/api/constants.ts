/**
 * Every name the controller shares with the cluster: API coordinates, labels,
 * annotations, finalizers, the field manager and defaults of the install.
 * One module, so that the constructs, the reconciler and the tests agree.
 */

export const API_GROUP = 'workers.spacelift.io';
export const API_VERSION = 'v1beta1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

export const WORKERPOOL_KIND = 'WorkerPool';
export const WORKERPOOL_PLURAL = 'workerpools';
export const WORKERPOOL_SINGULAR = 'workerpool';
/** `kubectl get wp` */
export const WORKERPOOL_SHORT_NAMES: readonly string[] = ['wp'];

export const WORKER_KIND = 'Worker';
export const WORKER_PLURAL = 'workers';
export const WORKER_SINGULAR = 'worker';
/** `kubectl get wk` */
export const WORKER_SHORT_NAMES: readonly string[] = ['wk'];

/** On Workers and run Pods: the backend's pool id (documented selector). */
export const LABEL_WORKERPOOL = `${API_GROUP}/workerpool`;
/**
 * On run Pods: the backend's worker id (a lowercase ULID, so it is also the
 * suffix of the Worker object's name). The documented command is
 * `kubectl get pods -l "workers.spacelift.io/worker=<worker-id>"`.
 */
export const LABEL_WORKER = `${API_GROUP}/worker`;
/** On run Pods: the backend's run id, unchanged. */
export const LABEL_RUN_ID = `${API_GROUP}/run-id`;
/** On Secrets the controller writes: which Worker's credentials they hold. */
export const LABEL_WORKER_SECRET = `${API_GROUP}/worker-credentials`;
/** On everything the controller creates, so its informers can select only its own objects. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'kube-workerpool-controller';

/**
 * On run Pods: the Worker object's name (the owner reference has it too, but
 * an annotation is what `kubectl describe pod` shows at a glance).
 */
export const ANNOTATION_WORKER_NAME = `${API_GROUP}/worker-name`;

/** Set on a Worker chosen for removal; survives controller restarts. */
export const ANNOTATION_DRAINING = `${API_GROUP}/draining`;

/** Holds a Worker until it is deregistered from the backend. */
export const FINALIZER_WORKER = `${API_GROUP}/deregister`;
/** Holds a run Pod until its outcome has been reported to the backend. */
export const FINALIZER_RUN_POD = `${API_GROUP}/report-run`;

export const FIELD_MANAGER = 'kube-workerpool-controller';

export const CONTROLLER_NAME = 'kube-workerpool-controller';
/** The namespace the documented commands install into. */
export const DEFAULT_CONTROLLER_NAMESPACE = 'spacelift-worker-controller-system';

/** Keys of the documented pool Secret. */
export const SECRET_KEY_TOKEN = 'token';
export const SECRET_KEY_PRIVATE_KEY = 'privateKey';

/** UID and GID every run container uses unless the user overrides it. */
export const RUN_POD_UID = 1983;

export const WORKSPACE_MOUNT_PATH = '/opt/spacelift/workspace';
export const BINARIES_CACHE_MOUNT_PATH = '/opt/spacelift/binaries_cache';
/**
 * Where the run's script is mounted (read-only, file `script`) into the
 * `init` container, from the run's Secret, when the run has a script.
 */
export const RUN_SCRIPT_MOUNT_PATH = '/opt/spacelift/run';
/** Key of the run Secret that holds the script. */
export const RUN_SECRET_KEY_SCRIPT = 'script';

export const CONTAINER_INIT = 'init';
export const CONTAINER_LAUNCHER_GRPC = 'launcher-grpc';
export const CONTAINER_WORKER = 'worker';

/** Holds a WorkerPool until its Workers are deregistered (they need the pool's credentials for that). */
export const FINALIZER_WORKERPOOL = `${API_GROUP}/workers`;

/** On run Pods: the last run status reported to the backend and acknowledged by the broker. */
export const ANNOTATION_RUN_REPORTED = `${API_GROUP}/reported-status`;
/** On run Pods: the backend asked to stop the run; its end is reported as `stopped`. */
export const ANNOTATION_STOP_REQUESTED = `${API_GROUP}/stop-requested`;

/** Keys of a Worker's credentials Secret (the usual TLS names, plus the CA). */
export const WORKER_SECRET_KEY = 'tls.key';
export const WORKER_SECRET_CERT = 'tls.crt';
export const WORKER_SECRET_CA = 'ca.crt';

/**
 * Set on every run Pod unless the pool's `spec.pod.annotations` says
 * otherwise: the cluster autoscaler and Karpenter then leave a node alone
 * while it runs a run, instead of draining it to save cost.
 */
export const RUN_POD_DISRUPTION_ANNOTATIONS: Readonly<Record<string, string>> = {
  'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false',
  'karpenter.sh/do-not-disrupt': 'true',
};

/**
 * During a certificate renewal: the new private key, stored before the
 * backend is asked for its certificate, so that a controller killed in the
 * middle finishes the renewal with the same key.
 */
export const WORKER_SECRET_NEXT_KEY = 'tls.key.next';
