import { describe, expect, test } from 'vitest';
import { at, find, synthController } from '../support/synth.js';

const objects = synthController();
const poolCrd = find(objects, 'CustomResourceDefinition', 'workerpools.workers.spacelift.io');
const workerCrd = find(objects, 'CustomResourceDefinition', 'workers.workers.spacelift.io');
const poolVersion = (at(poolCrd, 'spec.versions') as Record<string, unknown>[])[0];
const workerVersion = (at(workerCrd, 'spec.versions') as Record<string, unknown>[])[0];
const poolSchema = at(poolVersion, 'schema.openAPIV3Schema');
const poolSpec = at(poolSchema, 'properties.spec');
const podSpec = at(poolSpec, 'properties.pod');

interface SchemaNode {
  type?: string;
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
}

/** Every property path below a schema node that has no description. */
function undescribed(node: SchemaNode, path: string): string[] {
  const missing: string[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const childPath = `${path}.${name}`;
    if (name !== 'metadata' && !child.description) missing.push(childPath);
    missing.push(...undescribed(child, childPath));
    if (child.items) missing.push(...undescribed(child.items, `${childPath}[]`));
  }
  return missing;
}

describe('WorkerPool CRD', () => {
  test('is namespaced in workers.spacelift.io/v1beta1 with the documented names', () => {
    expect(at(poolCrd, 'spec.group')).toBe('workers.spacelift.io');
    expect(at(poolCrd, 'spec.scope')).toBe('Namespaced');
    expect(at(poolCrd, 'spec.names')).toMatchObject({ kind: 'WorkerPool', plural: 'workerpools', singular: 'workerpool', shortNames: ['wp'] });
    expect(poolVersion).toMatchObject({ name: 'v1beta1', served: true, storage: true });
  });

  test('has every spec field of the product', () => {
    expect(Object.keys(at(poolSpec, 'properties') as object).sort()).toEqual(
      [
        'allowedRunEnvVars',
        'allowedRunnerImageHosts',
        'autoscaling',
        'failedPodsHistoryLimit',
        'failedPodsHistoryTTL',
        'keepSuccessfulPods',
        'pod',
        'poolSize',
        'privateKey',
        'successfulPodsHistoryLimit',
        'successfulPodsHistoryTTL',
        'token',
      ].sort(),
    );
    expect(Object.keys(at(podSpec, 'properties') as object).sort()).toEqual(
      [
        'activeDeadlineSeconds', 'terminationGracePeriodSeconds', 'launcherImage', 'defaultRunnerImage',
        'customBinariesPath', 'initContainer', 'grpcServerContainer', 'workerContainer', 'customInitContainers',
        'additionalSidecarContainers', 'workspaceVolume', 'binariesCacheVolume', 'volumes', 'serviceAccountName',
        'automountServiceAccountToken', 'securityContext', 'imagePullSecrets', 'nodeSelector', 'nodeName',
        'affinity', 'schedulerName', 'tolerations', 'hostAliases', 'dnsConfig', 'dnsPolicy', 'runtimeClassName',
        'topologySpreadConstraints', 'labels', 'annotations', 'shareProcessNamespace', 'disruptionBudget',
      ].sort(),
    );
    for (const c of ['initContainer', 'grpcServerContainer', 'workerContainer']) {
      expect(Object.keys(at(podSpec, `properties.${c}.properties`) as object).sort()).toEqual(
        ['env', 'envFrom', 'imagePullPolicy', 'resources', 'securityContext', 'volumeMounts'],
      );
    }
  });

  test('poolSize is an integer of at least 0 that defaults to 1', () => {
    expect(at(poolSpec, 'properties.poolSize')).toMatchObject({ type: 'integer', minimum: 0, default: 1 });
  });

  test('token and privateKey are secretKeyRefs that must be set together', () => {
    for (const f of ['token', 'privateKey']) {
      expect(at(poolSpec, `properties.${f}.properties.secretKeyRef.required`)).toEqual(['name', 'key']);
    }
    expect(at(poolSpec, 'x-kubernetes-validations')).toEqual([
      expect.objectContaining({ rule: 'has(self.token) == has(self.privateKey)', message: expect.stringContaining('spec.privateKey') }),
    ]);
  });

  test('history TTLs are validated Go durations', () => {
    const pattern = new RegExp(at(poolSpec, 'properties.failedPodsHistoryTTL.pattern') as string);
    for (const ok of ['24h', '90m', '1h30m', '1.5h', '300ms']) expect(pattern.test(ok), ok).toBe(true);
    for (const bad of ['1 day', '24', 'h', '-5m', '']) expect(pattern.test(bad), bad).toBe(false);
    expect(at(poolSpec, 'properties.successfulPodsHistoryTTL.pattern')).toBe(pattern.source);
  });

  test('embedded Kubernetes objects are kept whole', () => {
    for (const f of ['affinity', 'workspaceVolume', 'binariesCacheVolume', 'securityContext', 'dnsConfig']) {
      expect(at(podSpec, `properties.${f}`)).toMatchObject({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    }
    expect(at(podSpec, 'properties.customInitContainers.items')).toMatchObject({ 'x-kubernetes-preserve-unknown-fields': true });
  });

  test('status carries sizes, counts, selector, conditions and observedGeneration', () => {
    expect(Object.keys(at(poolSchema, 'properties.status.properties') as object).sort()).toEqual(
      ['actualPoolSize', 'autoscaling', 'busyWorkers', 'conditions', 'desiredPoolSize', 'idleWorkers', 'observedGeneration', 'poolId', 'selector'],
    );
    expect(at(poolSchema, 'properties.status.properties.conditions')).toMatchObject({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    });
  });

  test('has the status and scale subresources', () => {
    expect(at(poolVersion, 'subresources')).toEqual({
      status: {},
      scale: { specReplicasPath: '.spec.poolSize', statusReplicasPath: '.status.actualPoolSize', labelSelectorPath: '.status.selector' },
    });
  });

  test('prints Desired Pool Size, Actual Pool Size, Busy, Idle, Ready (the Ready condition) and Age', () => {
    const columns = at(poolVersion, 'additionalPrinterColumns') as { name: string; jsonPath: string }[];
    expect(columns.map((c) => [c.name, c.jsonPath])).toEqual([
      ['Desired Pool Size', '.status.desiredPoolSize'],
      ['Actual Pool Size', '.status.actualPoolSize'],
      ['Busy', '.status.busyWorkers'],
      ['Idle', '.status.idleWorkers'],
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  test('describes every field', () => {
    expect(undescribed(poolSchema as SchemaNode, '')).toEqual([]);
    expect(undescribed(at(workerVersion, 'schema.openAPIV3Schema') as SchemaNode, '')).toEqual([]);
  });

  test('limits pool names so that worker names stay valid', () => {
    expect(at(poolSchema, 'x-kubernetes-validations')).toEqual([
      expect.objectContaining({ rule: 'size(self.metadata.name) <= 226' }),
    ]);
  });

  test('stays far below the 256 KiB that client-side kubectl apply can annotate', () => {
    expect(JSON.stringify(poolCrd).length).toBeLessThan(64 * 1024);
  });
});

describe('Worker CRD', () => {
  test('is namespaced with a status subresource', () => {
    expect(at(workerCrd, 'spec.names')).toMatchObject({ kind: 'Worker', plural: 'workers', shortNames: ['wk'] });
    expect(at(workerCrd, 'spec.scope')).toBe('Namespaced');
    expect(at(workerVersion, 'subresources')).toEqual({ status: {} });
  });

  test('status has registered, state, currentRunID and conditions', () => {
    const status = at(workerVersion, 'schema.openAPIV3Schema.properties.status.properties') as Record<string, unknown>;
    expect(status.registered).toMatchObject({ type: 'boolean' });
    expect(status.state).toMatchObject({ type: 'string', enum: ['Pending', 'Idle', 'Busy', 'Draining', 'Failed'] });
    expect(status.currentRunID).toMatchObject({ type: 'string' });
    expect(status.conditions).toMatchObject({ type: 'array' });
  });

  test('prints Pool, Registered, Status, Run ID and Age', () => {
    const columns = at(workerVersion, 'additionalPrinterColumns') as { name: string }[];
    expect(columns.map((c) => c.name)).toEqual(['Pool', 'Registered', 'Status', 'Run ID', 'Age']);
  });
});

test('no schema key is left in camelCase (the API server would ignore it)', () => {
  expect(JSON.stringify([poolCrd, workerCrd])).not.toMatch(/"xKubernetes|"openApiv3Schema"/);
});
