/**
 * `/healthz` and `/readyz` on the health probe address. Healthy means the
 * process serves; ready means it can do its job: a leader whose caches are
 * synced, or a standby (it is ready to take over, and Kubernetes must not
 * restart it for waiting).
 */
import { createServer, type Server } from 'node:http';
import type { BindAddress } from '../cli/flags.js';

export interface HealthState {
  /** Why the process is not ready, or undefined when it is. */
  notReadyReason(): string | undefined;
}

export function startHealthServer(address: BindAddress, state: HealthState): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const reason = state.notReadyReason();
      if (reason === undefined) res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      else res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${reason}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host === '' ? undefined : address.host, () => resolve(server));
  });
}
