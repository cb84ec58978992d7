import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyApiError } from '../../src/controller/runtime/errors.js';
import {
  KubeClient,
  PODS,
  WORKERS,
  jsonPointerSegment,
  resourcePath,
  type Pod,
} from '../../src/controller/runtime/k8s-client.js';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: unknown;
  socket: unknown;
}

let server: Server;
let seen: Seen[] = [];
let reply: (req: IncomingMessage, url: URL) => { status: number; body: unknown } = () => ({ status: 200, body: {} });
let client: KubeClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body: text === '' ? undefined : JSON.parse(text),
        socket: req.socket,
      });
      const url = new URL(req.url ?? '/', 'http://x');
      const { status, body } = reply(req, url);
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  client = KubeClient.fromKubeConfig(kc);
});

afterAll(async () => {
  client.rest.close();
  await new Promise<void>((r) => server.close(() => r()));
});

beforeEach(() => {
  seen = [];
  reply = () => ({ status: 200, body: {} });
});

describe('resourcePath', () => {
  it('knows core and group paths, collections, objects and subresources', () => {
    expect(resourcePath(PODS, 'ns', 'p')).toBe('/api/v1/namespaces/ns/pods/p');
    expect(resourcePath(PODS, undefined)).toBe('/api/v1/pods');
    expect(resourcePath(WORKERS, 'ns', 'w', 'status')).toBe('/apis/workers.spacelift.io/v1beta1/namespaces/ns/workers/w/status');
    expect(jsonPointerSegment('workers.spacelift.io/worker')).toBe('workers.spacelift.io~1worker');
  });
});

describe('KubeClient', () => {
  it('sends the kubeconfig credentials and reuses the connection', async () => {
    await client.get(PODS, 'ns', 'a');
    await client.get(PODS, 'ns', 'b');
    expect(seen.map((s) => s.authorization)).toEqual(['Bearer test-token', 'Bearer test-token']);
    expect(seen[0]?.socket).toBe(seen[1]?.socket);
  });

  it('creates with apiVersion, kind and our field manager', async () => {
    reply = (_req, _url) => ({ status: 201, body: { kind: 'Pod', metadata: { name: 'p', creationTimestamp: '2025-01-01T00:00:00Z' } } });
    const pod: Pod = await client.create(PODS, 'ns', { metadata: { name: 'p' } });
    expect(pod.metadata?.creationTimestamp).toBe('2025-01-01T00:00:00Z'); // wire format: a string, not a Date
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/api/v1/namespaces/ns/pods?fieldManager=kube-workerpool-controller',
      contentType: 'application/json',
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } },
    });
  });

  it('patches with the Content-Type of the patch kind, on the status subresource when asked', async () => {
    await client.mergePatch(WORKERS, 'ns', 'w', { status: { state: 'Idle' } }, { subresource: 'status' });
    await client.jsonPatch(WORKERS, 'ns', 'w', [{ op: 'remove', path: '/metadata/finalizers/0' }]);
    expect(seen.map((s) => [s.method, s.url, s.contentType])).toEqual([
      ['PATCH', '/apis/workers.spacelift.io/v1beta1/namespaces/ns/workers/w/status?fieldManager=kube-workerpool-controller', 'application/merge-patch+json'],
      ['PATCH', '/apis/workers.spacelift.io/v1beta1/namespaces/ns/workers/w?fieldManager=kube-workerpool-controller', 'application/json-patch+json'],
    ]);
    expect(seen[1]?.body).toEqual([{ op: 'remove', path: '/metadata/finalizers/0' }]);
  });

  it('deletes with preconditions', async () => {
    await client.delete(WORKERS, 'ns', 'w', { preconditions: { uid: 'u-1' }, propagationPolicy: 'Background' });
    expect(seen[0]).toMatchObject({
      method: 'DELETE',
      body: { kind: 'DeleteOptions', preconditions: { uid: 'u-1' }, propagationPolicy: 'Background' },
    });
  });

  it('fails with an ApiException carrying the Status', async () => {
    reply = () => ({ status: 409, body: { kind: 'Status', reason: 'AlreadyExists', message: 'pods "p" already exists', code: 409 } });
    const err: unknown = await client.create(PODS, 'ns', { metadata: { name: 'p' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect(classifyApiError(err)).toBe('alreadyExists');
    expect((err as Error).message).toContain('pods "p" already exists');
  });

  it('lists every page and returns the resourceVersion to watch from', async () => {
    reply = (_req, url) =>
      url.searchParams.get('continue') === 'next'
        ? { status: 200, body: { metadata: { resourceVersion: '50' }, items: [{ metadata: { name: 'b' } }] } }
        : { status: 200, body: { metadata: { resourceVersion: '40', continue: 'next' }, items: [{ metadata: { name: 'a' } }] } };
    const all = await client.listAll(PODS, 'ns', { labelSelector: 'app=x' });
    expect(all.items.map((p) => p.metadata?.name)).toEqual(['a', 'b']);
    expect(all.resourceVersion).toBe('50');
    expect(seen[0]?.url).toBe('/api/v1/namespaces/ns/pods?labelSelector=app%3Dx&limit=500');
  });

  it('reports a refused connection as a network error', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const err: unknown = await KubeClient.fromKubeConfig(kc).get(PODS, 'ns', 'p').catch((e: unknown) => e);
    expect(classifyApiError(err)).toBe('network');
  });
});
