/**
 * The controller as a user runs it (issue 14): installed from
 * dist/manifests.yaml through the kustomize base (`kubectl apply -k` of an
 * overlay whose `images:` names the one `npm run images` built, no
 * `kubectl set image`: issue 18), running as a Pod on the node. In a cluster of its
 * own, next to the shared one (its own bridge, pod range and ports): an
 * in-cluster controller watches every namespace, and the shared cluster's
 * tests run controllers of their own.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import type { ControlPlane } from '../../src/cluster/control-plane.js';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.js';
import { KubeClient } from '../../src/runtime/k8s-client.js';
import { createPool, startEnv, waitFor, type Env } from '../integration/backend-harness.js';
import { canStartControlPlanes, kubectlInBackground, kubectlOk, MANIFESTS, skipWithout, startPrivateControlPlane, testNode } from '../setup/cluster-access.js';
import { httpGet, METRICS_READER_ROLE, serviceAccountToken } from './observability-support.js';

const node = testNode();
const NS = 'spacelift-worker-controller-system';
const DEPLOYMENT = 'kube-workerpool-controller';
const LEASE = 'kube-workerpool-controller-leader';

describe.skipIf(skipWithout('the node', node !== null) || skipWithout('control planes of its own (not KWC_TEST_KUBECONFIG; the Kubernetes binaries)', canStartControlPlanes()))('the controller in the cluster, installed from dist/manifests.yaml with kubectl apply -k', () => {
  let plane: ControlPlane;
  let env: Env;
  let client: KubeClient;
  const k = (args: readonly string[], stdin?: string): Promise<string> => kubectlOk(args, { kubeconfig: plane.kubeconfigPath, ...(stdin !== undefined ? { stdin } : {}) });
  const images = node?.images;

  beforeAll(async () => {
    plane = await startPrivateControlPlane({ node: true, images: [images?.controller.archive ?? '', images?.standinLauncher.archive ?? '', images?.standinRunner.archive ?? ''] });
    client = KubeClient.fromKubeConfig(loadKubeConfig(plane.kubeconfigPath));
    // Where this cluster's pods, the controller among them, reach it; pool tokens carry this address.
    env = await startEnv('embedded', { host: plane.state.node?.address ?? '', redeliverMs: 1_000 });
    // The overlay a user writes next to the base (README "Install on a cluster").
    const overlay = mkdtempSync(join(tmpdir(), 'kwc-overlay-'));
    const [newName, digest] = (images?.controller.digestRef ?? '').split('@');
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      stringify({ resources: [relative(overlay, dirname(MANIFESTS))], images: [{ name: 'kube-workerpool-controller', newName, digest }] }),
    );
    await k(['apply', '-k', overlay]);
  }, 300_000);
  afterAll(async () => {
    client?.rest.close();
    await env?.close();
    await plane?.stop();
  });

  async function controllerPod(): Promise<{ metadata: { name: string; uid: string }; status: { podIP: string; conditions: { type: string; status: string }[]; containerStatuses: { ready: boolean; restartCount: number; imageID: string }[] } }> {
    const list = JSON.parse(await k(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=kube-workerpool-controller', '-o', 'json'])) as { items: Awaited<ReturnType<typeof controllerPod>>[] };
    const pod = list.items[0];
    if (pod === undefined) throw new Error('no controller pod');
    return pod;
  }

  test('the Deployment becomes Available: the locally built image runs, non-root, and its probes pass through the kubelet', async () => {
    // The overlay's images: set it, the base names kube-workerpool-controller:<version>.
    expect(await k(['-n', NS, 'get', 'deployment', DEPLOYMENT, '-o', 'jsonpath={.spec.template.spec.containers[0].image}'])).toBe(images?.controller.digestRef);
    await k(['-n', NS, 'rollout', 'status', `deployment/${DEPLOYMENT}`, '--timeout=180s']);
    const available = await k(['-n', NS, 'get', 'deployment', DEPLOYMENT, '-o', 'jsonpath={.status.conditions[?(@.type=="Available")].status}']);
    expect(available).toBe('True');
    const pod = await controllerPod();
    expect(pod.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(pod.status.containerStatuses[0]).toMatchObject({ ready: true, restartCount: 0 });
    expect(pod.status.containerStatuses[0]?.imageID).toContain(images?.controller.digestRef.split('@')[1]);
    // The process, as the host sees it: node from the image, UID 65532.
    const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    const mine = pids.find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('/nodejs/bin/node\0lib/src/controller/cli/main.js') && readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(pod.metadata.uid);
      } catch {
        return false;
      }
    });
    expect(mine, 'the controller process on the host').toBeDefined();
    expect(readFileSync(`/proc/${mine}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    // No probe failed on the way.
    const events = await k(['-n', NS, 'get', 'events', '--field-selector', `involvedObject.name=${pod.metadata.name}`, '-o', 'jsonpath={.items[*].reason}']);
    expect(events).not.toContain('Unhealthy');
  }, 240_000);

  test('finds the cluster through its service account and leads on its Lease', async () => {
    const pod = await controllerPod();
    const logs = await waitFor('the controller to lead', async () => {
      const text = await k(['-n', NS, 'logs', pod.metadata.name]);
      return text.includes('"became leader"') ? text : undefined;
    }, 60_000);
    const connecting = logs.split('\n').find((l) => l.includes('"connecting to the cluster"'));
    expect(connecting).toContain('in-cluster service account (https://10.96.0.1:443)');
    const holder = await k(['-n', NS, 'get', 'lease', LEASE, '-o', 'jsonpath={.spec.holderIdentity}']);
    expect(holder).toContain(pod.metadata.name);
  });

  test('serves a WorkerPool end to end: workers register, a run really runs on the node and finishes', async () => {
    await k(['create', 'namespace', 'team-a']);
    const pool = await createPool(env, 'in-cluster');
    await k(['-n', 'team-a', 'create', 'secret', 'generic', 'pool-credentials', `--from-literal=token=${pool.tokenText}`, `--from-literal=privateKey=${pool.privateKeyB64}`]);
    const workerPool = {
      apiVersion: 'workers.spacelift.io/v1beta1',
      kind: 'WorkerPool',
      metadata: { name: 'in-cluster', namespace: 'team-a' },
      spec: { poolSize: 2, token: { secretKeyRef: { name: 'pool-credentials', key: 'token' } }, privateKey: { secretKeyRef: { name: 'pool-credentials', key: 'privateKey' } } },
    };
    await k(['apply', '-f', '-'], JSON.stringify(workerPool));
    await k(['-n', 'team-a', 'wait', '--for=jsonpath={.status.actualPoolSize}=2', 'workerpool/in-cluster', '--timeout=120s']);
    const table = await k(['-n', 'team-a', 'get', 'workerpools']);
    expect(table).toMatch(/in-cluster\s+2\s+2\s+0\s+2\s/);

    const res = await env.admin<{ id: string }>('POST', '/api/runs', {
      poolId: pool.id,
      runnerImage: images?.standinRunner.ref,
      launcherImage: images?.standinLauncher.ref,
      env: { KWC_STANDIN_SCRIPT: 'echo "run $SPACELIFT_RUN_ID on the node"; exit 0' },
    });
    expect(res.status).toBe(201);
    const runId = res.body.id;
    const run = await waitFor('the run to be finished', async () => {
      const r = await env.admin<{ state: string; reason: string | null }>('GET', `/api/runs/${runId}`);
      if (r.body.state === 'failed') throw new Error(`run failed: ${r.body.reason ?? ''}`);
      return r.body.state === 'finished' ? r.body : undefined;
    }, 120_000);
    expect(run.state).toBe('finished');
    await waitFor('the successful run Pod to be deleted', async () => (await k(['-n', 'team-a', 'get', 'pods', '-l', `workers.spacelift.io/run-id=${runId}`, '-o', 'name'])).trim() === '', 60_000);
  }, 240_000);

  test('/metrics answers through the Service: 200 to a token bound to the metrics reader role, 401 without a token, 403 to another', async () => {
    // The Service selects the controller Pod: its endpoint is the Pod's address, ready.
    const pod = await controllerPod();
    const endpoints = await k(['-n', NS, 'get', 'endpointslices', '-l', 'kubernetes.io/service-name=kube-workerpool-controller-metrics', '-o', 'jsonpath={.items[*].endpoints[*].addresses[*]} {.items[*].endpoints[*].conditions.ready}']);
    expect(endpoints).toBe(`${pod.status.podIP} true`);

    await k(['-n', 'default', 'create', 'serviceaccount', 'scraper']);
    await k(['create', 'clusterrolebinding', 'scraper-metrics', `--clusterrole=${METRICS_READER_ROLE}`, '--serviceaccount=default:scraper']);
    await k(['-n', 'default', 'create', 'serviceaccount', 'stranger']);
    const reader = await serviceAccountToken(client, 'default', 'scraper');
    const stranger = await serviceAccountToken(client, 'default', 'stranger');

    // kubectl port-forward to the Service: the API server, the kubelet and the Pod's network namespace in between.
    const forward = kubectlInBackground(['-n', NS, 'port-forward', 'service/kube-workerpool-controller-metrics', ':8443'], { kubeconfig: plane.kubeconfigPath });
    try {
      const port = await waitFor('kubectl port-forward to listen', () => /Forwarding from 127\.0\.0\.1:(\d+) -> 8443/.exec(forward.output())?.[1], 30_000);
      const url = `https://127.0.0.1:${port}/metrics`;
      const ok = await httpGet(url, reader);
      expect(ok.status).toBe(200);
      expect(ok.body).toContain('spacelift_workerpool_controller_worker_total{pool_ulid=');
      expect(ok.body).toContain('workerpool_controller_run_outcomes_total{status="finished",reason_class="none"} 1');
      expect((await httpGet(url)).status).toBe(401);
      expect((await httpGet(url, stranger)).status).toBe(403);
    } finally {
      forward.stop();
      await forward.done;
    }
  }, 120_000);
});
