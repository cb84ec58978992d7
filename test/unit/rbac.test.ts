import { describe, expect, test } from 'vitest';
import { find, ManifestObject, synthController } from '../support/synth.js';

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

function rules(o: ManifestObject): Rule[] {
  return o.rules as Rule[];
}

/** What the controller needs in the namespaces it watches, written out by hand so that it can disagree with the code. */
const WATCHED_RULES: Rule[] = [
  { apiGroups: ['workers.spacelift.io'], resources: ['workerpools'], verbs: ['get', 'list', 'watch', 'patch'] },
  { apiGroups: ['workers.spacelift.io'], resources: ['workerpools/status', 'workers/status'], verbs: ['get', 'patch'] },
  { apiGroups: ['workers.spacelift.io'], resources: ['workerpools/finalizers', 'workers/finalizers'], verbs: ['update'] },
  { apiGroups: ['workers.spacelift.io'], resources: ['workers'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
  { apiGroups: [''], resources: ['events'], verbs: ['list', 'create', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

describe('cluster-wide install', () => {
  const objects = synthController();

  test('the manager ClusterRole has exactly the rules the controller needs', () => {
    expect(rules(find(objects, 'ClusterRole', 'kube-workerpool-controller-manager'))).toEqual(WATCHED_RULES);
  });

  test('leader election is a Role in the controller namespace only', () => {
    const role = find(objects, 'Role', 'kube-workerpool-controller-leader-election');
    expect(role.metadata.namespace).toBe('spacelift-worker-controller-system');
    expect(rules(role)).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
  });

  test('metrics auth and metrics reader roles', () => {
    expect(rules(find(objects, 'ClusterRole', 'kube-workerpool-controller-metrics-auth'))).toEqual([
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ]);
    expect(rules(find(objects, 'ClusterRole', 'kube-workerpool-controller-metrics-reader'))).toEqual([
      { nonResourceURLs: ['/metrics'], verbs: ['get'] },
    ]);
  });

  test('every binding gives its role to the controller ServiceAccount', () => {
    const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
    expect(bindings.map((b) => b.metadata.name).sort()).toEqual([
      'kube-workerpool-controller-leader-election',
      'kube-workerpool-controller-manager',
      'kube-workerpool-controller-metrics-auth',
    ]);
    for (const b of bindings) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kube-workerpool-controller', namespace: 'spacelift-worker-controller-system' }]);
      expect((b.roleRef as { name: string }).name).toBe(b.metadata.name);
    }
  });

  test('no rule anywhere uses a wildcard or grants exec, escalate, bind or impersonate', () => {
    const all = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap(rules);
    for (const r of all) {
      for (const v of [...(r.apiGroups ?? []), ...(r.resources ?? []), ...r.verbs, ...(r.nonResourceURLs ?? [])]) {
        expect(v).not.toContain('*');
      }
      expect(r.verbs).not.toEqual(expect.arrayContaining(['escalate']));
      expect(r.verbs).not.toEqual(expect.arrayContaining(['bind']));
      expect(r.verbs).not.toEqual(expect.arrayContaining(['impersonate']));
      expect(r.resources ?? []).not.toContain('pods/exec');
      expect(r.resources ?? []).not.toContain('nodes');
    }
  });
});

describe('install limited to some namespaces', () => {
  const objects = synthController({ watchNamespaces: ['team-a', 'team-b'] });

  test('pools, workers, pods and secrets are granted by Roles in those namespaces only', () => {
    for (const ns of ['team-a', 'team-b']) {
      const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === 'kube-workerpool-controller-manager' && o.metadata.namespace === ns);
      expect(role, ns).toBeDefined();
      expect(rules(role as ManifestObject)).toEqual(WATCHED_RULES);
      const binding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns);
      expect((binding?.roleRef as { kind: string }).kind).toBe('Role');
    }
    const clusterWide = objects.filter((o) => o.kind === 'ClusterRole').flatMap(rules).flatMap((r) => r.resources ?? []);
    for (const resource of ['pods', 'secrets', 'workers', 'workerpools', 'events']) expect(clusterWide).not.toContain(resource);
  });

  test('the controller is told which namespaces to watch', () => {
    const deployment = find(objects, 'Deployment', 'kube-workerpool-controller');
    expect(JSON.stringify(deployment)).toContain('"--namespaces=team-a,team-b"');
  });
});
