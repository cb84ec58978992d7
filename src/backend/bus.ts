import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { encodeMessage, parseMessage, TO_BACKEND_TYPES, type ScheduleMessage, type StopMessage, type ToBackendMessage } from '../protocol/messages.js';
import { allWriteonlyTopics, parseWorkerTopic, readonlyTopic } from '../protocol/topics.js';
import { BACKEND_IDENTITY } from './ca.js';
import type { Logger } from './log.js';
import type { BackendService, WorkerSender } from './service.js';

export interface BusOptions {
  brokerUrl: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  topicNamespace: string;
  service: BackendService;
  log: Logger;
}

export interface Bus extends WorkerSender {
  close(): Promise<void>;
}

/**
 * The backend's own MQTT session (identity `backend`), the same against the
 * embedded broker and an external one.
 *
 * Persistent session and a QoS 1 subscription to every writeonly topic, so
 * worker messages published while the backend is down wait in an external
 * broker. A message is acknowledged only after its effects are on disk.
 */
export async function connectBus(opts: BusOptions): Promise<Bus> {
  const { log, service } = opts;
  const ns = opts.topicNamespace;
  const clientOpts: IClientOptions = {
    clientId: BACKEND_IDENTITY,
    clean: false,
    protocolVersion: 4,
    keepalive: 30,
    reconnectPeriod: 1000,
    resubscribe: false,
    rejectUnauthorized: true,
    ca: opts.caPem,
    cert: opts.certPem,
    key: opts.keyPem,
    manualConnect: true,
  };
  const client: MqttClient = mqtt.connect(opts.brokerUrl, clientOpts);

  client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void): void => {
    handle(packet).then(
      () => done(),
      (err: Error) => {
        log.error('worker message handling failed', { topic: packet.topic, error: err.message });
        done();
      },
    );
  };

  async function handle(packet: IPublishPacket): Promise<void> {
    const topic = parseWorkerTopic(packet.topic, ns);
    if (!topic || topic.direction !== 'writeonly') {
      service.rejectMessage(packet.topic, 'not a worker writeonly topic');
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const result = parseMessage<ToBackendMessage>(payload, TO_BACKEND_TYPES);
    if (!result.ok) {
      service.rejectMessage(packet.topic, result.reason);
      return;
    }
    await service.handleWorkerMessage(packet.topic, topic.poolId, topic.workerId, result.message);
  }

  let firstConnect = true;
  await new Promise<void>((resolve, reject) => {
    client.on('connect', (connack) => {
      client.subscribe(allWriteonlyTopics(ns), { qos: 1 }, (err, granted) => {
        if (err || granted?.some((g) => g.qos === 128)) {
          const error = err ?? new Error(`broker refused the backend's subscription to ${allWriteonlyTopics(ns)}: check its ACL`);
          log.error('subscription failed', { error: error.message });
          if (firstConnect) reject(error);
          return;
        }
        log.info('connected to broker', { sessionPresent: connack.sessionPresent });
        if (firstConnect) {
          firstConnect = false;
          resolve();
        }
      });
    });
    client.on('error', (err) => {
      log.warn('broker connection error', { error: err.message });
      if (firstConnect) {
        client.end(true);
        reject(new Error(`cannot connect to the broker at ${opts.brokerUrl}: ${err.message}`));
      }
    });
    client.on('offline', () => log.warn('broker connection lost; reconnecting'));
    client.connect();
  });

  let closed = false;
  return {
    send(poolId: string, workerId: string, message: ScheduleMessage | StopMessage) {
      // A send that lands after close() (a durable write finishing during a
      // restart) is dropped: mqtt.js throws once its store is closed, and the
      // run stays scheduled in the state, so the next instance sends it again.
      if (closed || client.disconnecting) {
        log.info('not sent: the broker connection is closing; the next start re-sends it', { workerId, runId: message.runId });
        return;
      }
      // QoS 1 to a persistent session: the broker keeps it while the worker is away.
      client.publish(readonlyTopic(poolId, workerId, ns), encodeMessage(message), { qos: 1 }, (err) => {
        if (err) log.warn('publish to worker failed; will be re-sent', { workerId, runId: message.runId, error: err.message });
      });
    },
    async close() {
      closed = true;
      // A graceful DISCONNECT waits for in-flight QoS 1 acks; do not hang on a broker that went away.
      const graceful = new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 2000).unref());
      if ((await Promise.race([graceful, timer])) === 'timeout') {
        await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
      }
    },
  };
}
