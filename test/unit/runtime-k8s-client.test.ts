import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyApiError, KubeApiError } from '../../src/runtime/errors.js';
import { loadKubeconfigFiles } from '../../src/runtime/kubeconfig.js';
import {
  KubeClient,
  PODS,
  jsonPointerSegment,
  resource,
  resourcePath,
  type CustomObject,
  type Pod,
} from '../../src/runtime/k8s-client.js';
import { FIELD_MANAGER } from '../../src/api/constants.js';

/** A custom resource to exercise the client with (the runtime knows no kinds of its own). */
const WORKERS = resource<CustomObject>('workers.spacelift.io', 'v1beta1', 'workers', 'Worker');

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
const dir = mkdtempSync(join(tmpdir(), 'kwc-k8s-client-'));

/** A kubeconfig file (YAML, as kubectl writes it) for `server`, read by the controller's own loader. */
async function clientFor(server: string, user = '  user:\n    token: test-token\n'): Promise<KubeClient> {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${server}\nusers:\n- name: u\n${user}` +
      `contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n`,
  );
  return KubeClient.fromKubeConfig((await loadKubeconfigFiles([file])).connection, { fieldManager: FIELD_MANAGER });
}

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
  client = await clientFor(`http://127.0.0.1:${port}`);
});

afterAll(async () => {
  client.rest.close();
  rmSync(dir, { recursive: true, force: true });
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

  it('fails with a KubeApiError carrying the Status', async () => {
    reply = () => ({ status: 409, body: { kind: 'Status', reason: 'AlreadyExists', message: 'pods "p" already exists', code: 409 } });
    const err: unknown = await client.create(PODS, 'ns', { metadata: { name: 'p' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
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
    const refused = await clientFor('http://127.0.0.1:1', '  user: {}\n');
    const err: unknown = await refused.get(PODS, 'ns', 'p').catch((e: unknown) => e);
    expect(classifyApiError(err)).toBe('network');
  });
});

describe('KubeRest.watch', () => {
  let watchServer: Server;
  let watchClient: KubeClient;
  let handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void = () => undefined;
  const closed: string[] = [];

  beforeAll(async () => {
    watchServer = createServer((req, res) => {
      req.socket.on('close', () => closed.push(req.url ?? ''));
      handler(req, res);
    });
    await new Promise<void>((r) => watchServer.listen(0, '127.0.0.1', r));
    watchClient = await clientFor(`http://127.0.0.1:${(watchServer.address() as AddressInfo).port}`);
  });

  afterAll(async () => {
    watchClient.rest.close();
    watchServer.closeAllConnections();
    await new Promise<void>((r) => watchServer.close(() => r()));
  });

  /** Opens a watch and resolves with every event and how it ended. */
  function watchToEnd(path: string): Promise<{ events: [string, unknown][]; err: unknown }> {
    const events: [string, unknown][] = [];
    return new Promise((resolve) => {
      void watchClient.rest.watch(path, { resourceVersion: '7' }, (type, object) => events.push([type, object]), (err) => resolve({ events, err }));
    });
  }

  it('delivers events split across chunks in order, with watch=true and credentials, and ends cleanly', async () => {
    let seenReq: IncomingMessage | undefined;
    handler = (req, res) => {
      seenReq = req;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const lines = `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } })}\n`;
      res.write(lines.slice(0, 20));
      setTimeout(() => res.end(lines.slice(20)), 20);
    };
    const { events, err } = await watchToEnd('/api/v1/pods');
    expect(err).toBeUndefined();
    expect(events).toEqual([
      ['ADDED', { metadata: { name: 'a' } }],
      ['BOOKMARK', { metadata: { resourceVersion: '9' } }],
    ]);
    expect(seenReq?.url).toBe('/api/v1/pods?resourceVersion=7&watch=true');
    expect(seenReq?.headers.authorization).toBe('Bearer test-token');
  });

  it('ends with a KubeApiError when the server refuses the watch (410 Gone relists)', async () => {
    handler = (_req, res) => {
      res.writeHead(410, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 7 (12)' }));
    };
    const { events, err } = await watchToEnd('/api/v1/pods');
    expect(events).toEqual([]);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(classifyApiError(err)).toBe('gone');
    expect((err as Error).message).toContain('too old resource version');
  });

  it('ends with an error naming the line when the stream is not JSON', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('<html>proxy error</html>\n');
    };
    const { err } = await watchToEnd('/api/v1/secrets');
    expect(String(err)).toContain('/api/v1/secrets: a line that is not JSON');
  });

  it('closes the connection when aborted, and reports one clean end', async () => {
    let opened: () => void = () => undefined;
    const open = new Promise<void>((r) => (opened = r));
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'ADDED', object: {} })}\n`);
      opened();
    };
    const done: unknown[] = [];
    const abort = await watchClient.rest.watch('/api/v1/leases', {}, () => undefined, (err) => done.push(err));
    await open;
    abort();
    await expect.poll(() => closed.filter((u) => u.startsWith('/api/v1/leases')).length).toBe(1);
    expect(done).toEqual([undefined]);
  });
});
