// A worker thread that holds raw WATCH requests and timestamps every event as
// its bytes arrive. It runs on its own event loop, so a busy main thread (the
// in-process backend and broker) cannot delay the moment an event is seen.
// Plain JavaScript: worker threads do not inherit tsx's loader.
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

const { server, tls } = workerData;
const agent = new https.Agent({ ...tls, keepAlive: true, maxSockets: 16 });
const requests = new Map();
const now = () => performance.timeOrigin + performance.now();

function summarize(object) {
  const m = object?.metadata ?? {};
  return { name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion, labels: m.labels, status: object?.status, spec: object?.spec };
}

// A watch the server ends (timeout, or a slow reader closed on a burst) is
// resumed from the last resourceVersion seen, so no event is lost.
function start(id, path, query, resourceVersion) {
  const url = new URL(server + path);
  const q = { ...query, watch: '1', allowWatchBookmarks: 'true', ...(resourceVersion ? { resourceVersion } : {}) };
  for (const [k, v] of Object.entries(q)) url.searchParams.set(k, String(v));
  let lastRv = resourceVersion;
  const req = https.request(url, { agent, method: 'GET', headers: { Accept: 'application/json' } }, (res) => {
    if (res.statusCode !== 200) {
      parentPort.postMessage({ id, kind: 'error', error: `watch ${path}: HTTP ${res.statusCode}` });
      res.resume();
      return;
    }
    if (resourceVersion === undefined) parentPort.postMessage({ id, kind: 'ready', t: now() });
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      const t = now();
      buffer += chunk;
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.trim() === '') continue;
        const event = JSON.parse(line);
        if (event.type === 'ERROR') {
          parentPort.postMessage({ id, kind: 'error', error: `watch ${path}: ${JSON.stringify(event.object)}` });
          continue;
        }
        lastRv = event.object?.metadata?.resourceVersion ?? lastRv;
        if (event.type === 'BOOKMARK') continue;
        parentPort.postMessage({ id, kind: 'event', t, type: event.type, object: summarize(event.object) });
      }
    });
    res.on('end', () => {
      if (!requests.has(id)) return;
      parentPort.postMessage({ id, kind: 'resumed' });
      start(id, path, query, lastRv ?? '0');
    });
    res.on('error', () => undefined);
  });
  req.on('error', (err) => {
    if (requests.get(id) === req) parentPort.postMessage({ id, kind: 'error', error: String(err) });
  });
  req.end();
  requests.set(id, req);
}

parentPort.on('message', (m) => {
  if (m.cmd === 'watch') start(m.id, m.path, m.query ?? {});
  else if (m.cmd === 'stop') {
    requests.get(m.id)?.destroy();
    requests.delete(m.id);
  } else if (m.cmd === 'close') {
    const all = [...requests.values()];
    requests.clear();
    for (const r of all) r.destroy();
    agent.destroy();
    parentPort.close();
  }
});
