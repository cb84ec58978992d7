import { createServer as createNetServer } from 'node:net';
import { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type Server } from 'node:tls';
import { MAX_MESSAGE_BYTES } from '../protocol/messages.js';
import { PacketSizeLimit } from './packet-limit.js';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { BACKEND_IDENTITY } from './ca.js';
import { mayPublish, maySubscribe, type BrokerIdentity } from './acl.js';
import type { Logger } from './log.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  caPem: string;
  certPem: string;
  keyPem: string;
  topicNamespace: string;
  /** The pool and current certificate serial of a registered worker, or undefined if it is not (or no longer) registered. */
  workerAuth: (workerId: string) => WorkerAuth | undefined;
  /** Largest MQTT packet accepted; a client announcing a bigger one is disconnected before it is buffered. */
  maxPacketBytes?: number;
  /** The TLS handshake must finish within this; default 10 s. */
  handshakeTimeoutMs?: number;
  log: Logger;
}

/** What the broker checks a worker's certificate against. */
export interface WorkerAuth {
  readonly poolId: string;
  /** Serial of the one certificate the backend last issued to the worker, normalized by {@link normalizeSerial}. */
  readonly serial: string;
}

/**
 * Default largest MQTT packet: the protocol's largest message plus room for
 * the topic and headers. Also written into the generated mosquitto.conf.
 */
export const DEFAULT_MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 4096;

/** Certificate serials compare as numbers: lower-case hex without leading zeros (Node and forge spell them differently). */
export function normalizeSerial(hex: string): string {
  const s = hex.toLowerCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

export interface EmbeddedBroker {
  port: number;
  /** Disconnects a client (a deregistered worker). */
  kick(clientId: string): void;
  /**
   * Refuses new connections and disconnects every worker, keeping the
   * backend's own session: what a worker publishes after this is not
   * acknowledged, so it sends it again to the next instance.
   */
  closeWorkers(): void;
  close(): Promise<void>;
}

function authError(message: string): AuthenticateError {
  // 5 = "not authorized" in MQTT 3.1.1.
  return Object.assign(new Error(message), { returnCode: 5 }) as AuthenticateError;
}

/**
 * The embedded MQTT broker: aedes behind a TLS server that requires a client
 * certificate signed by the backend CA. The certificate CN is the identity;
 * the client id must equal it (otherwise a worker could take over another
 * worker's persistent session), and workers must be registered.
 *
 * Sessions live in memory: after a backend restart they are gone, which the
 * backend makes up for by re-sending every unacknowledged `schedule`.
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { log } = opts;
  const identities = new WeakMap<Client, BrokerIdentity>();
  // aedes sees the packet-size guard, not the TLS socket; the certificate is read from the socket.
  const tlsOf = new WeakMap<object, TLSSocket>();
  const clients = new Map<string, Client>();

  const broker = await Aedes.createBroker({
    authenticate(client, _username, _password, done) {
      const socket = tlsOf.get(client.conn);
      const peer = socket?.getPeerCertificate();
      const cn = peer?.subject?.CN;
      if (typeof cn !== 'string' || cn.length === 0) return done(authError('client certificate has no CN'), false);
      if (client.id !== cn) {
        log.warn('broker refused client: client id differs from certificate CN', { clientId: client.id, cn });
        return done(authError('client id must equal the certificate CN'), false);
      }
      if (cn === BACKEND_IDENTITY) {
        identities.set(client, { kind: 'backend' });
        return done(null, true);
      }
      const registered = opts.workerAuth(cn);
      if (registered === undefined) {
        log.warn('broker refused client: not a registered worker', { clientId: cn });
        return done(authError('not a registered worker'), false);
      }
      // The certificate must be the one issued at the worker's latest registration in its pool: an
      // older one (re-keyed, renewed) or one from a registration of the same id elsewhere is revoked.
      const serial = normalizeSerial(peer?.serialNumber ?? '');
      const ou = peer?.subject?.OU;
      if (serial !== registered.serial || ou !== registered.poolId) {
        log.warn('broker refused client: certificate is not the one registered for this worker', { clientId: cn, serial, pool: ou });
        return done(authError('certificate revoked: not the one registered for this worker'), false);
      }
      const poolId = registered.poolId;
      identities.set(client, { kind: 'worker', workerId: cn, poolId });
      done(null, true);
    },
    authorizeSubscribe(client, sub, done) {
      const id = identities.get(client);
      if (id && maySubscribe(id, sub.topic, opts.topicNamespace)) return done(null, sub);
      log.warn('broker refused subscription', { clientId: client.id, topic: sub.topic });
      // A null subscription answers SUBACK 0x80 (failure) and keeps the client connected.
      done(null, null);
    },
    authorizePublish(client, packet, done) {
      if (client === null) return done(null);
      const id = identities.get(client);
      if (id && mayPublish(id, packet.topic, opts.topicNamespace)) return done(null);
      log.warn('broker refused publish; disconnecting client', { clientId: client.id, topic: packet.topic });
      // MQTT 3.1.1 has no negative PUBACK; aedes disconnects the client, which
      // is also the clearest signal to a misbehaving one.
      done(new Error(`not authorized to publish to ${packet.topic}`));
    },
  });
  broker.on('client', (c) => clients.set(c.id, c));
  broker.on('clientDisconnect', (c) => {
    if (clients.get(c.id) === c) clients.delete(c.id);
  });

  const sockets = new Set<TLSSocket>();
  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const server: Server = createTlsServer(
    {
      ca: opts.caPem,
      cert: opts.certPem,
      key: opts.keyPem,
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    },
    (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      const limit = new PacketSizeLimit(maxPacketBytes, (announced) => {
        log.warn('broker disconnected a client: packet too large', { cn: socket.getPeerCertificate().subject?.CN, announced, maxPacketBytes });
        socket.destroy();
      });
      limit.on('error', () => undefined);
      const conn = Duplex.from({ readable: socket.pipe(limit), writable: socket });
      socket.on('close', () => conn.destroy());
      tlsOf.set(conn, socket);
      broker.handle(conn);
    },
  );
  server.on('tlsClientError', (err) => log.debug('broker TLS handshake failed', { error: err.message }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;

  return {
    port,
    kick(clientId) {
      clients.get(clientId)?.close();
    },
    closeWorkers() {
      server.close();
      for (const [id, c] of clients) if (id !== BACKEND_IDENTITY) c.close();
    },
    async close() {
      const closed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Finds a free TCP port on `host` (for tests and `--broker-port 0`-like defaults). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, host, resolve));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
