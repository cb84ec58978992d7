/**
 * The Helm chart on a real cluster with the real helm (issue 18): installed
 * with the locally built image, the controller Pod runs on the node and
 * serves a WorkerPool; `helm upgrade` updates the CRDs (the chart keeps them
 * as templates) and narrows RBAC to `namespaces: [a]`; `helm uninstall`
 * keeps the CRDs and the pools, a new install serves them again, and with
 * `crds.keep=false` the CRDs go with the release. In a cluster of its own,
 * like in-cluster.test.ts: the controller watches every namespace.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { createPool, startEnv, waitFor, type Env, type Pool } from '../integration/backend-harness.js';
import { serviceAccountMay } from '../setup/access-review.js';
import { canStartControlPlanes, kubectl, kubectlOk, skipWithout, startPrivateControlPlane, testNode } from '../setup/cluster-access.js';
import { CHART, helm, helmOk } from '../support/helm.js';

const node = testNode();
const NS = 'kwc-system';
const RELEASE = 'kwc';
const DEPLOYMENT = 'kube-workerpool-controller';
const SA = { namespace: NS, name: 'kube-workerpool-controller' };
const POOL_CRD = 'crd/workerpools.workers.spacelift.io';

describe.skipIf(skipWithout('the node', node !== null) || skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()))('the Helm chart on the cluster, with the real helm', () => {
  let plane: ControlPlane;
  let env: Env;
  let pool: Pool;
  const images = node?.images;
  const k = (args: readonly string[], stdin?: string): Promise<string> => kubectlOk(args, { kubeconfig: plane.kubeconfigPath, ...(stdin !== undefined ? { stdin } : {}) });
  const h = (args: readonly string[]): Promise<string> => helmOk([...args, '--kubeconfig', plane.kubeconfigPath]);
  /** The locally built image, by digest, as the chart's values. */
  const imageValues = (): string[] => {
    const [repository, digest] = (images?.controller.digestRef ?? '').split('@');
    return ['--set', `image.repository=${repository ?? ''}`, '--set', `image.digest=${digest ?? ''}`];
  };

  /** A copy of the chart as an earlier version would have had it: its WorkerPool CRD without the Ready column. */
  function chartWithoutReadyColumn(): string {
    const dir = join(mkdtempSync(join(tmpdir(), 'kwc-old-chart-')), 'chart');
    cpSync(CHART, dir, { recursive: true });
    const crds = join(dir, 'templates', 'crds.yaml');
    const text = readFileSync(crds, 'utf8');
    const column = /\n {8}- description: "The Ready condition[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*type: string/;
    expect(text).toMatch(column);
    writeFileSync(crds, text.replace(column, ''));
    return dir;
  }

  const printerColumns = async (): Promise<string> => k(['get', POOL_CRD, '-o', 'jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}']);

  beforeAll(async () => {
    plane = await startPrivateControlPlane({ node: true, images: [images?.controller.archive ?? '', images?.standinLauncher.archive ?? '', images?.standinRunner.archive ?? ''] });
    env = await startEnv('embedded', { host: plane.state.node?.address ?? '', redeliverMs: 1_000 });
    for (const ns of ['a', 'b']) await k(['create', 'namespace', ns]);
    pool = await createPool(env, 'helm');
  }, 600_000);
  afterAll(async () => {
    await env?.close();
    await plane?.stop();
  });

  test('helm install (an earlier chart): the controller Pod is Ready on the node with the local image and serves a WorkerPool', async () => {
    const out = await h(['install', RELEASE, chartWithoutReadyColumn(), '--namespace', NS, '--create-namespace', ...imageValues(), '--wait', '--timeout', '4m']);
    expect(out).toContain('STATUS: deployed');
    const pod = JSON.parse(await k(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=kube-workerpool-controller', '-o', 'json'])) as {
      items: { spec: { nodeName: string }; status: { conditions: { type: string; status: string }[]; containerStatuses: { imageID: string; ready: boolean }[] } }[];
    };
    expect(pod.items).toHaveLength(1);
    const [controller] = pod.items;
    expect(controller?.spec.nodeName).toBe(node?.name);
    expect(controller?.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(controller?.status.containerStatuses[0]?.imageID).toContain(images?.controller.digestRef.split('@')[1]);
    // Every object of the release carries the recommended labels, managed by Helm.
    const labelled = await k(['get', 'crd,clusterrole,clusterrolebinding,validatingadmissionpolicy', '-l', `app.kubernetes.io/part-of=kube-workerpool-controller,app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance=${RELEASE}`, '-o', 'name']);
    expect(labelled.trim().split('\n').sort()).toEqual([
      'clusterrole.rbac.authorization.k8s.io/kube-workerpool-controller-manager',
      'clusterrole.rbac.authorization.k8s.io/kube-workerpool-controller-metrics-auth',
      'clusterrole.rbac.authorization.k8s.io/kube-workerpool-controller-metrics-reader',
      'clusterrolebinding.rbac.authorization.k8s.io/kube-workerpool-controller-manager',
      'clusterrolebinding.rbac.authorization.k8s.io/kube-workerpool-controller-metrics-auth',
      'customresourcedefinition.apiextensions.k8s.io/workerpools.workers.spacelift.io',
      'customresourcedefinition.apiextensions.k8s.io/workers.workers.spacelift.io',
      'validatingadmissionpolicy.admissionregistration.k8s.io/kube-workerpool-controller-managed-objects',
    ]);
    expect(await printerColumns()).not.toContain('Ready');

    await k(['-n', 'a', 'create', 'secret', 'generic', 'pool-credentials', `--from-literal=token=${pool.tokenText}`, `--from-literal=privateKey=${pool.privateKeyB64}`]);
    const workerPool = {
      apiVersion: 'workers.spacelift.io/v1beta1',
      kind: 'WorkerPool',
      metadata: { name: 'helm', namespace: 'a' },
      spec: { poolSize: 2, token: { secretKeyRef: { name: 'pool-credentials', key: 'token' } }, privateKey: { secretKeyRef: { name: 'pool-credentials', key: 'privateKey' } } },
    };
    await k(['apply', '-f', '-'], JSON.stringify(workerPool));
    await k(['-n', 'a', 'wait', '--for=jsonpath={.status.actualPoolSize}=2', 'workerpool/helm', '--timeout=120s']);
  }, 360_000);

  test('helm upgrade updates the CRDs: the WorkerPool CRD gains the Ready column, which kubectl get wp prints', async () => {
    const out = await h(['upgrade', RELEASE, CHART, '--namespace', NS, ...imageValues(), '--wait', '--timeout', '4m']);
    expect(out).toContain('STATUS: deployed');
    expect(await printerColumns()).toBe('Desired Pool Size Actual Pool Size Busy Idle Ready Age');
    await k(['-n', 'a', 'wait', '--for=condition=Ready', 'workerpool/helm', '--timeout=120s']);
    const table = await k(['-n', 'a', 'get', 'wp']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+DESIRED POOL SIZE\s+ACTUAL POOL SIZE\s+BUSY\s+IDLE\s+READY\s+AGE$/);
    expect(table).toMatch(/helm\s+2\s+2\s+0\s+2\s+True\s/);
  }, 360_000);

  test('helm upgrade to namespaces: [a]: the controller can no longer read Secrets or create Pods in b, and still serves a', async () => {
    const kc = loadKubeConfig(plane.kubeconfigPath);
    const may = (verb: string, resource: string, namespace: string, group = ''): Promise<boolean> => serviceAccountMay(kc, SA, { resource: { verb, resource, namespace, group } });
    expect(await may('get', 'secrets', 'b')).toBe(true);
    expect(await may('create', 'pods', 'b')).toBe(true);

    await h(['upgrade', RELEASE, CHART, '--namespace', NS, ...imageValues(), '--set', 'namespaces={a}', '--wait', '--timeout', '4m']);
    expect(await may('get', 'secrets', 'b')).toBe(false);
    expect(await may('create', 'pods', 'b')).toBe(false);
    expect(await may('list', 'workerpools', '', 'workers.spacelift.io')).toBe(false);
    expect(await may('list', 'workerpools', 'a', 'workers.spacelift.io')).toBe(true);
    expect(await may('get', 'secrets', 'a')).toBe(true);
    expect(await may('create', 'pods', 'a')).toBe(true);
    const args = await k(['-n', NS, 'get', 'deployment', DEPLOYMENT, '-o', 'jsonpath={.spec.template.spec.containers[0].args}']);
    expect(JSON.parse(args)).toContain('--namespaces=a');
    expect(await k(['get', 'clusterrole', '-l', 'app.kubernetes.io/managed-by=Helm', '-o', 'name'])).not.toContain('kube-workerpool-controller-manager');

    // The new controller (the upgrade rolled the Deployment) serves a: it scales the pool.
    await k(['-n', 'a', 'scale', 'workerpool/helm', '--replicas=3']);
    await k(['-n', 'a', 'wait', '--for=jsonpath={.status.actualPoolSize}=3', 'workerpool/helm', '--timeout=120s']);
  }, 360_000);

  test('helm uninstall keeps the CRDs, the WorkerPool, its Workers and Secrets; a new install serves them again', async () => {
    const workersBefore = (await k(['-n', 'a', 'get', 'workers', '-o', 'name'])).trim().split('\n').sort();
    expect(workersBefore).toHaveLength(3);
    const out = await h(['uninstall', RELEASE, '--namespace', NS, '--wait']);
    expect(out).toContain('These resources were kept due to the resource policy');
    expect(out).toContain('[CustomResourceDefinition] workerpools.workers.spacelift.io');

    // The controller, its RBAC and the admission policy are gone ...
    await waitFor('the controller Pod to be gone', async () => (await k(['-n', NS, 'get', 'pods', '-o', 'name'])).trim() === '', 120_000);
    for (const gone of [['-n', NS, 'deployment', DEPLOYMENT], ['clusterrole', 'kube-workerpool-controller-metrics-auth'], ['validatingadmissionpolicy', 'kube-workerpool-controller-managed-objects']]) {
      const result = await kubectl(['get', ...gone], { kubeconfig: plane.kubeconfigPath });
      expect(result.stderr, gone.join(' ')).toContain('NotFound');
    }
    // ... the CRDs, the pool, its Workers (with their finalizers) and the credentials stay.
    expect(await k(['get', POOL_CRD, 'crd/workers.workers.spacelift.io', '-o', 'name'])).toContain('workerpools.workers.spacelift.io');
    expect(await k(['-n', 'a', 'get', 'workerpool', 'helm', '-o', 'jsonpath={.spec.poolSize}'])).toBe('3');
    expect((await k(['-n', 'a', 'get', 'workers', '-o', 'name'])).trim().split('\n').sort()).toEqual(workersBefore);
    expect(await k(['-n', 'a', 'get', 'secret', 'pool-credentials', '-o', 'name'])).toContain('pool-credentials');

    // The same release name adopts the kept CRDs; the new controller takes the pool over.
    await h(['install', RELEASE, CHART, '--namespace', NS, ...imageValues(), '--wait', '--timeout', '4m']);
    await k(['-n', 'a', 'wait', '--for=condition=Ready', 'workerpool/helm', '--timeout=180s']);
    expect(await k(['-n', 'a', 'get', 'workerpool', 'helm', '-o', 'jsonpath={.status.actualPoolSize}'])).toBe('3');
    expect((await k(['-n', 'a', 'get', 'workers', '-o', 'name'])).trim().split('\n').sort()).toEqual(workersBefore);
  }, 480_000);

  test('asked otherwise (crds.keep=false, pools deleted first), helm uninstall removes the CRDs', async () => {
    await h(['upgrade', RELEASE, CHART, '--namespace', NS, ...imageValues(), '--set', 'crds.keep=false', '--wait', '--timeout', '4m']);
    expect(await k(['get', POOL_CRD, '-o', 'jsonpath={.metadata.annotations}'])).not.toContain('resource-policy');
    // While the controller runs: it deregisters the workers and lets the pool go.
    await k(['-n', 'a', 'delete', 'workerpool', 'helm', '--timeout=120s']);
    const out = await h(['uninstall', RELEASE, '--namespace', NS, '--wait']);
    expect(out).not.toContain('kept due to the resource policy');
    await waitFor('the CRDs to be gone', async () => {
      const result = await kubectl(['get', 'crd', '-o', 'name'], { kubeconfig: plane.kubeconfigPath });
      return !result.stdout.includes('workers.spacelift.io');
    }, 60_000);
    expect((await helm(['status', RELEASE, '--namespace', NS, '--kubeconfig', plane.kubeconfigPath])).stderr).toContain('release: not found');
  }, 360_000);
});
