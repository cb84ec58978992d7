import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on a local address (loopback by default). The port is released before
 * it is returned, so another process could take it in between; callers that
 * fail to bind retry with new ports.
 */
export function freeLoopbackPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port of a loopback listener'));
      });
    });
  });
}

/** Distinct free ports: the kernel may hand the same one out twice once released. */
export async function freeLoopbackPorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freeLoopbackPort(host));
  return [...ports];
}
