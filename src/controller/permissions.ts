/**
 * Every Kubernetes permission the controller uses, and nothing more. The
 * install's RBAC is generated from this list, and the RBAC tests check the
 * generated roles against it, so a new API call starts here.
 */
import { API_GROUP, WORKER_PLURAL, WORKERPOOL_PLURAL } from '../api/constants.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/**
 * Where a rule applies:
 * - `watched`: in every namespace the controller watches (a ClusterRole, or one
 *   Role per namespace when the install is limited to some namespaces);
 * - `controller-namespace`: only the controller's own namespace;
 * - `cluster`: cluster-scoped APIs (always a ClusterRole).
 */
export type PermissionScope = 'watched' | 'controller-namespace' | 'cluster';

export interface Permission {
  readonly scope: PermissionScope;
  readonly apiGroup: string;
  readonly resources: readonly string[];
  readonly verbs: readonly Verb[];
  /** Why the controller needs it; printed nowhere, read by reviewers. */
  readonly why: string;
}

export const PERMISSIONS: readonly Permission[] = [
  {
    scope: 'watched',
    apiGroup: API_GROUP,
    resources: [WORKERPOOL_PLURAL],
    verbs: ['get', 'list', 'watch', 'patch'],
    why: 'reconcile pools; patch adds and removes the finalizer',
  },
  {
    scope: 'watched',
    apiGroup: API_GROUP,
    resources: [`${WORKERPOOL_PLURAL}/status`, `${WORKER_PLURAL}/status`],
    verbs: ['get', 'patch'],
    why: 'report pool and worker status',
  },
  {
    scope: 'watched',
    apiGroup: API_GROUP,
    resources: [`${WORKERPOOL_PLURAL}/finalizers`, `${WORKER_PLURAL}/finalizers`],
    verbs: ['update'],
    why: 'owner references with blockOwnerDeletion need update on the owner finalizers',
  },
  {
    scope: 'watched',
    apiGroup: API_GROUP,
    resources: [WORKER_PLURAL],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    why: 'one Worker per pool slot',
  },
  {
    scope: 'watched',
    apiGroup: '',
    resources: ['pods'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    why: 'run pods: create on schedule, patch finalizers, delete on cleanup and stop',
  },
  {
    scope: 'watched',
    apiGroup: '',
    resources: ['pods/log'],
    verbs: ['get'],
    why: "relay each run's worker container log to the backend (what kubectl logs -f reads)",
  },
  {
    scope: 'watched',
    apiGroup: '',
    resources: ['secrets'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    why: "read pool credentials; keep each worker key and certificate in its own Secret; each run's script in the run's Secret",
  },
  {
    scope: 'watched',
    apiGroup: 'policy',
    resources: ['poddisruptionbudgets'],
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    why: 'the PodDisruptionBudget a pool asks for over its run pods (spec.pod.disruptionBudget)',
  },
  {
    scope: 'watched',
    apiGroup: '',
    resources: ['configmaps'],
    verbs: ['get'],
    why: "read the keys of the ConfigMaps a pool's workerContainer.envFrom names, which a run's environment may not override",
  },
  {
    scope: 'watched',
    apiGroup: '',
    resources: ['events'],
    verbs: ['list', 'create', 'patch'],
    why: 'record events users must see; list a stuck pod events to report why it failed',
  },
  {
    scope: 'watched',
    apiGroup: 'events.k8s.io',
    resources: ['events'],
    verbs: ['create', 'patch'],
    why: 'record events through the events.k8s.io API',
  },
  {
    scope: 'controller-namespace',
    apiGroup: 'coordination.k8s.io',
    resources: ['leases'],
    verbs: ['get', 'create', 'update'],
    why: 'leader election',
  },
  {
    scope: 'controller-namespace',
    apiGroup: '',
    resources: ['events'],
    verbs: ['create', 'patch'],
    why: 'leader election events',
  },
  {
    scope: 'cluster',
    apiGroup: 'authentication.k8s.io',
    resources: ['tokenreviews'],
    verbs: ['create'],
    why: 'authenticate metrics scrapers',
  },
  {
    scope: 'cluster',
    apiGroup: 'authorization.k8s.io',
    resources: ['subjectaccessreviews'],
    verbs: ['create'],
    why: 'authorize metrics scrapers for get /metrics',
  },
];

/** The non-resource URL the metrics reader role grants. */
export const METRICS_PATH = '/metrics';
