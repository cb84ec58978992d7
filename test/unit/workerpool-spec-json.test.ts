/**
 * What the WorkerPool construct writes for the spec a cdk8s app gives it:
 * quantities as strings, numbers or Quantity objects of any origin, the CRD's
 * field names, cdk8s-plus names of embedded objects turned into JSON names,
 * and a clear error instead of a lost or misspelled field.
 */
import { Chart, JsonPatch, Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { describe, expect, test } from 'vitest';
import { WorkerPool, type WorkerPoolProps } from '../../constructs/index.js';
import { EMBEDDED_CONVERTERS } from '../../constructs/spec-json.js';
import type { Schema } from '../../src/api/schema.js';
import { WORKERPOOL_SPEC_SCHEMA } from '../../src/api/workerpool.js';
import { at, find, synthChart } from '../support/synth.js';

/** What `cdk8s import k8s` generates into an app's own imports/k8s.ts (and other cdk8s-plus versions ship). */
class AppQuantity {
  public static fromString(value: string): AppQuantity {
    return new AppQuantity(value);
  }
  private constructor(public readonly value: string | number) {}
}

function synthSpec(spec: WorkerPoolProps['spec']): Record<string, unknown> {
  const pool = find(synthChart((chart) => new WorkerPool(chart, 'pool', { name: 'p', spec })), 'WorkerPool', 'p');
  return pool.spec as Record<string, unknown>;
}

function specError(spec: unknown): string {
  const chart = new Chart(Testing.app(), 'test');
  try {
    new WorkerPool(chart, 'p', { name: 'p', spec: spec as WorkerPoolProps['spec'] });
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('no error');
}

describe('WorkerPool spec as JSON', () => {
  test('quantities may be strings, numbers or Quantity objects of any cdk8s-plus version', () => {
    const spec = synthSpec({
      pod: {
        workerContainer: {
          resources: {
            requests: { cpu: '500m', memory: k8s.Quantity.fromString('1Gi') },
            limits: { cpu: 2, memory: AppQuantity.fromString('4Gi'), 'ephemeral-storage': k8s.Quantity.fromNumber(1000) },
          },
        },
      },
    });
    expect(at(spec, 'pod.workerContainer.resources')).toEqual({
      requests: { cpu: '500m', memory: '1Gi' },
      limits: { cpu: 2, memory: '4Gi', 'ephemeral-storage': 1000 },
    });
  });

  test('the history TTLs are written under the CRD names', () => {
    const spec = synthSpec({ successfulPodsHistoryTTL: '1h30m', failedPodsHistoryTTL: '24h', successfulPodsHistoryLimit: 2 });
    expect(spec).toEqual({ poolSize: 1, successfulPodsHistoryTTL: '1h30m', failedPodsHistoryTTL: '24h', successfulPodsHistoryLimit: 2 });
  });

  test('embedded objects: cdk8s-plus names become JSON names, quantities and ports are unwrapped, undefined is left out', () => {
    const spec = synthSpec({
      pod: {
        workspaceVolume: { name: 'ignored', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } },
        volumes: [
          { name: 'ebs', awsElasticBlockStore: { volumeId: 'vol-1', fsType: 'ext4' } },
          { name: 'scratch', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: AppQuantity.fromString('8Gi') } } } } } },
        ],
        additionalSidecarContainers: [
          {
            name: 'dind',
            image: 'docker:dind',
            command: undefined,
            ports: [{ containerPort: 2375, hostIp: '127.0.0.1' }],
            resources: { limits: { cpu: '1', memory: k8s.Quantity.fromString('2Gi') } },
            readinessProbe: { httpGet: { port: k8s.IntOrString.fromNumber(2375), path: '/_ping' }, periodSeconds: 5 },
            livenessProbe: { tcpSocket: { port: 'dind' } },
          },
        ],
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['ci'] }] }] } } },
        tolerations: [{ key: 'ci', operator: 'Exists', effect: 'NoSchedule' }],
        securityContext: { runAsUser: 1983, fsGroup: 1983, runAsNonRoot: true },
        workerContainer: { securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false }, env: [{ name: 'A', value: undefined }] },
      },
    });
    expect(at(spec, 'pod.workspaceVolume')).toEqual({ name: 'ignored', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } });
    expect(at(spec, 'pod.volumes')).toEqual([
      { name: 'ebs', awsElasticBlockStore: { volumeID: 'vol-1', fsType: 'ext4' } },
      { name: 'scratch', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } } } } },
    ]);
    expect(at(spec, 'pod.additionalSidecarContainers')).toEqual([
      {
        name: 'dind',
        image: 'docker:dind',
        ports: [{ containerPort: 2375, hostIP: '127.0.0.1' }],
        resources: { limits: { cpu: '1', memory: '2Gi' } },
        readinessProbe: { httpGet: { port: 2375, path: '/_ping' }, periodSeconds: 5 },
        livenessProbe: { tcpSocket: { port: 'dind' } },
      },
    ]);
    expect(at(spec, 'pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms')).toEqual([
      { matchExpressions: [{ key: 'pool', operator: 'In', values: ['ci'] }] },
    ]);
    expect(at(spec, 'pod.tolerations')).toEqual([{ key: 'ci', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(at(spec, 'pod.securityContext')).toEqual({ runAsUser: 1983, fsGroup: 1983, runAsNonRoot: true });
    expect(at(spec, 'pod.workerContainer')).toEqual({
      securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
      env: [{ name: 'A' }],
    });
  });

  test('a frozen embedded object is read like any other', () => {
    const volume = Object.freeze({ name: 'cache', emptyDir: Object.freeze({ sizeLimit: '1Gi' }) });
    expect(at(synthSpec({ pod: { volumes: [volume] } }), 'pod.volumes')).toEqual([{ name: 'cache', emptyDir: { sizeLimit: '1Gi' } }]);
  });

  test.each<[string, unknown, string]>([
    ['the old TTL spelling', { failedPodsHistoryTtl: '24h' }, 'spec.failedPodsHistoryTtl is not a field of spec; did you mean failedPodsHistoryTTL?'],
    ['an unknown field', { pod: { nodeSelectors: {} } }, 'spec.pod.nodeSelectors is not a field of spec.pod; its fields are activeDeadlineSeconds,'],
    ['a malformed quantity', { pod: { workerContainer: { resources: { limits: { cpu: '500x' } } } } }, 'spec.pod.workerContainer.resources.limits.cpu must be a Kubernetes quantity such as "500m", "4Gi" or 2 (a string, a number or a Quantity), got "500x"'],
    ['a quantity of the wrong type', { pod: { workerContainer: { resources: { requests: { memory: true } } } } }, 'spec.pod.workerContainer.resources.requests.memory must be a Kubernetes quantity'],
    ['a TTL that is not a Go duration', { successfulPodsHistoryTTL: '1 day' }, 'spec.successfulPodsHistoryTTL must match ^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'],
    ['a value outside the enum', { pod: { dnsPolicy: 'Cluster' } }, 'spec.pod.dnsPolicy must be one of ClusterFirstWithHostNet, ClusterFirst, Default, None, got "Cluster"'],
    ['a negative count', { failedPodsHistoryLimit: -1 }, 'spec.failedPodsHistoryLimit must be an integer of at least 0, got -1'],
    ['an embedded field Kubernetes 1.28 does not have', { pod: { volumes: [{ name: 'v', image: { reference: 'r' } }] } }, 'spec.pod.volumes[0].image: not a field of the Kubernetes 1.28 type (cdk8s-plus-28) that spec.pod.volumes[0] has'],
    ['a misspelled embedded field', { pod: { additionalSidecarContainers: [{ name: 'c', image: 'i', resources: { limit: { cpu: '1' } } }] } }, 'spec.pod.additionalSidecarContainers[0].resources.limit: not a field'],
    ['an embedded object that is not an object', { pod: { affinity: 'zone-a' } }, 'spec.pod.affinity must be an object, got "zone-a"'],
  ])('refuses %s, naming the field and the value', (_, spec, message) => {
    expect(specError(spec)).toContain(message);
  });

  test('a field of a newer Kubernetes goes in with a JSON patch on the resource', () => {
    const objects = synthChart((chart) => {
      const pool = new WorkerPool(chart, 'pool', { name: 'p', spec: { pod: { volumes: [{ name: 'tools', emptyDir: {} }] } } });
      pool.resource.addJsonPatch(JsonPatch.remove('/spec/pod/volumes/0/emptyDir'), JsonPatch.add('/spec/pod/volumes/0/image', { reference: 'registry.example.com/tools:1' }));
    });
    expect(at(find(objects, 'WorkerPool', 'p'), 'spec.pod.volumes')).toEqual([{ name: 'tools', image: { reference: 'registry.example.com/tools:1' } }]);
  });

  test('every embedded object of the schema has its converter, and no other place has one', () => {
    const places: string[] = [];
    const walk = (node: Schema, place: string): void => {
      if (node['x-kubernetes-preserve-unknown-fields'] === true) places.push(place);
      for (const [key, child] of Object.entries(node.properties ?? {})) walk(child, place === '' ? key : `${place}.${key}`);
      if (node.items !== undefined) walk(node.items, `${place}[]`);
    };
    walk(WORKERPOOL_SPEC_SCHEMA, '');
    expect(places.length).toBeGreaterThan(10);
    expect([...EMBEDDED_CONVERTERS.keys()].sort()).toEqual(places.sort());
  });
});
