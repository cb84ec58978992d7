/**
 * Least-privilege RBAC for the controller, generated from the permissions
 * list that the reconciler exports. Never a wildcard: rules name every group,
 * resource and verb.
 */
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { METRICS_PATH, Permission, PERMISSIONS, PermissionScope } from '../src/controller/permissions.js';

export interface ControllerRbacProps {
  /** Name prefix of every role and binding. */
  readonly name: string;
  /** Namespace of the controller and its ServiceAccount. */
  readonly namespace: string;
  readonly serviceAccountName: string;
  /**
   * Namespaces the controller watches. Empty means every namespace (one
   * ClusterRole); otherwise one Role per namespace and no cluster-wide access
   * to pools, workers, pods or secrets.
   * @default []
   */
  readonly watchNamespaces?: readonly string[];
}

export function rulesFor(scope: PermissionScope, permissions: readonly Permission[] = PERMISSIONS): k8s.PolicyRule[] {
  return permissions
    .filter((p) => p.scope === scope)
    .map((p) => ({ apiGroups: [p.apiGroup], resources: [...p.resources], verbs: [...p.verbs] }));
}

export class ControllerRbac extends Construct {
  constructor(scope: Construct, id: string, props: ControllerRbacProps) {
    super(scope, id);
    const subject: k8s.Subject = { kind: 'ServiceAccount', name: props.serviceAccountName, namespace: props.namespace };
    const watch = props.watchNamespaces ?? [];

    const clusterRole = (roleId: string, name: string, rules: k8s.PolicyRule[]): void => {
      new k8s.KubeClusterRole(this, roleId, { metadata: { name }, rules });
      new k8s.KubeClusterRoleBinding(this, `${roleId}Binding`, {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [subject],
      });
    };
    const role = (roleId: string, name: string, namespace: string, rules: k8s.PolicyRule[]): void => {
      new k8s.KubeRole(this, roleId, { metadata: { name, namespace }, rules });
      new k8s.KubeRoleBinding(this, `${roleId}Binding`, {
        metadata: { name, namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [subject],
      });
    };

    if (watch.length === 0) {
      clusterRole('Manager', `${props.name}-manager`, rulesFor('watched'));
    } else {
      for (const ns of watch) role(`Manager-${ns}`, `${props.name}-manager`, ns, rulesFor('watched'));
    }
    role('LeaderElection', `${props.name}-leader-election`, props.namespace, rulesFor('controller-namespace'));
    clusterRole('MetricsAuth', `${props.name}-metrics-auth`, rulesFor('cluster'));

    // Granted to whoever scrapes the metrics (Prometheus); the controller itself does not need it.
    new k8s.KubeClusterRole(this, 'MetricsReader', {
      metadata: { name: `${props.name}-metrics-reader` },
      rules: [{ nonResourceUrLs: [METRICS_PATH], verbs: ['get'] }],
    });
  }
}
