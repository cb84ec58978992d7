import { EventEmitter } from 'node:events';
import { createSecureContext, type SecureContext } from 'node:tls';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import {
  encodeMessage,
  parseMessage,
  RUN_ID_PATTERN,
  TO_WORKER_TYPES,
  type RejectMessage,
  type RunStatusMessage,
  type StateMessage,
  type ToWorkerMessage,
  type WorkerState,
} from './messages.js';
import { readonlyTopic, writeonlyTopic } from './topics.js';
import { MESSAGE_VERSION, DEFAULT_TOPIC_NAMESPACE } from './version.js';

/** What a worker needs to connect; all of it lives in the Worker's Secret. */
export interface WorkerCredentials {
  poolId: string;
  workerId: string;
  /** PEM client certificate from registration. */
  certificatePem: string;
  /** PEM private key the certificate was issued for. */
  privateKeyPem: string;
  /** PEM CA that signed the broker's server certificate. */
  caPem: string;
}

/** Minimal structured logger; fields never contain key material. */
export interface ConnectionLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface WorkerConnectionOptions {
  /** `mqtts://host:port` from the pool token. */
  brokerUrl: string;
  credentials: WorkerCredentials;
  /** First topic level; default `spacelift`. */
  topicNamespace?: string;
  /**
   * Called for every valid message, one at a time, in arrival order (the
   * next call waits for the returned promise). May publish and await
   * (e.g. `sendRunStatus`). Must be idempotent by `runId`: `schedule` is
   * re-sent until the worker answers `accepted`, and a crash between receipt
   * and handling is covered by that re-send.
   */
  onMessage: (message: ToWorkerMessage) => void | Promise<void>;
  /** State announced on connect; default idle. */
  initialState?: { state: WorkerState; runId?: string };
  /** Heartbeat period (±20% jitter); default 30 s. The backend treats 100 s of silence as offline. */
  heartbeatSeconds?: number;
  /** Reconnect backoff bounds; default 1 s .. 30 s, with full jitter. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  logger?: ConnectionLogger;
}

export interface WorkerConnectionEvents {
  /** Session established (`sessionPresent` tells whether the broker kept it). */
  connect: [{ sessionPresent: boolean }];
  /** Connection lost or refused; reconnect is scheduled unless closed. */
  disconnect: [{ error?: Error }];
  /** A received message failed validation; it was acknowledged and dropped. */
  rejected: [{ reason: string; topic: string }];
}

const silentLogger: ConnectionLogger = { info() {}, warn() {} };

/**
 * One worker's MQTT session.
 *
 * TLS with the worker's client certificate; client id = worker id; a
 * persistent session (`clean: false`) with a QoS 1 subscription to the
 * worker's readonly topic, so messages published while it is offline wait in
 * the broker. Publishes QoS 1 on its writeonly topic. Sets a will that reports
 * `offline` if the connection drops without a DISCONNECT. Invalid messages are
 * counted, logged and dropped, never thrown.
 *
 * Per connection: one TLS socket, one mqtt client, one timer.
 */
export class WorkerConnection extends EventEmitter<WorkerConnectionEvents> {
  private readonly opts: WorkerConnectionOptions;
  private readonly log: ConnectionLogger;
  private readonly client: MqttClient;
  private readonly inTopic: string;
  private readonly outTopic: string;
  private state: { state: WorkerState; runId?: string };
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  private rejected = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(opts: WorkerConnectionOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    const { poolId, workerId } = opts.credentials;
    const ns = opts.topicNamespace ?? DEFAULT_TOPIC_NAMESPACE;
    this.inTopic = readonlyTopic(poolId, workerId, ns);
    this.outTopic = writeonlyTopic(poolId, workerId, ns);
    this.state = opts.initialState ?? { state: 'idle' };
    const secureContext: SecureContext = createSecureContext({
      cert: opts.credentials.certificatePem,
      key: opts.credentials.privateKeyPem,
      ca: opts.credentials.caPem,
    });
    const will: StateMessage = { type: 'state', version: MESSAGE_VERSION, state: 'offline' };
    // tls.connect takes a prebuilt SecureContext; reusing it across reconnects
    // avoids re-parsing the PEMs every time.
    const clientOpts: IClientOptions & { secureContext: SecureContext } = {
      clientId: workerId,
      clean: false,
      protocolVersion: 4,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      resubscribe: false,
      rejectUnauthorized: true,
      secureContext,
      will: { topic: this.outTopic, payload: encodeMessage(will), qos: 1, retain: false },
      manualConnect: true,
    };
    this.client = mqtt.connect(opts.brokerUrl, clientOpts);
    // Acknowledge on receipt and handle in order on a separate chain. Waiting
    // for the handler before the PUBACK would stall this connection's whole
    // inbound stream, including the PUBACKs the handler itself waits for when
    // it reports `accepted` (a deadlock). At-least-once handling comes from
    // the backend instead: it re-sends `schedule` until the worker accepts.
    this.client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void): void => {
      this.queue = this.queue.then(() => this.dispatch(packet)).catch(() => undefined);
      done();
    };
    this.client.on('connect', (connack) => this.onConnect(connack.sessionPresent));
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => {
      this.lastError = err;
    });
  }

  private lastError: Error | undefined;

  /** Starts connecting (and reconnecting until {@link close}). */
  start(): this {
    this.client.connect();
    return this;
  }

  /** Whether the session is up now. */
  get connected(): boolean {
    return this.client.connected;
  }

  /** Messages rejected by validation since creation. */
  get rejectedCount(): number {
    return this.rejected;
  }

  /** The worker id (client id and certificate CN). */
  get workerId(): string {
    return this.opts.credentials.workerId;
  }

  /**
   * Records the worker's state and publishes it now if connected; it is
   * re-sent on every connect and heartbeat. {@link sendRunStatus} already
   * switches between `busy` and `idle`; call this for `draining` and to
   * correct the state after a restart. Resolves when the broker
   * acknowledged it, or immediately when offline.
   */
  async setState(state: WorkerState, runId?: string): Promise<void> {
    this.state = runId === undefined ? { state } : { state, runId };
    if (this.client.connected) await this.publishState();
  }

  /**
   * Publishes a run status update (QoS 1). While disconnected the message is
   * queued in memory and sent after reconnecting; resolves on PUBACK.
   */
  sendRunStatus(update: Omit<RunStatusMessage, 'type' | 'version'>): Promise<void> {
    const msg: RunStatusMessage = { type: 'run-status', version: MESSAGE_VERSION, ...update };
    // Keep the heartbeat consistent with the statuses: the backend fails a run
    // whose worker says `idle` after accepting it, so a heartbeat racing the
    // caller's own setState must already say `busy`.
    const ended = update.status === 'finished' || update.status === 'failed' || update.status === 'stopped';
    if (!ended && this.state.state !== 'draining') this.state = { state: 'busy', runId: update.runId };
    else if (ended && this.state.runId === update.runId) this.state = this.state.state === 'draining' ? { state: 'draining' } : { state: 'idle' };
    const sent = this.publish(msg);
    if (ended && this.client.connected) void this.publishState().catch(() => undefined);
    return sent;
  }

  /**
   * Disconnects cleanly (no will is published: a graceful stop, e.g. a
   * controller restart, keeps the session and queued messages for later).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    await new Promise<void>((resolve) => this.client.end(false, {}, () => resolve()));
  }

  /** Drops the connection without DISCONNECT, as a crash would (the broker publishes the will). For tests and shutdown paths. */
  async destroy(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    await new Promise<void>((resolve) => this.client.end(true, {}, () => resolve()));
  }

  private publish(msg: StateMessage | RunStatusMessage | RejectMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.publish(this.outTopic, encodeMessage(msg), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
    });
  }

  private publishState(): Promise<void> {
    return this.publish({ type: 'state', version: MESSAGE_VERSION, ...this.state });
  }

  private onConnect(sessionPresent: boolean): void {
    this.attempt = 0;
    this.lastError = undefined;
    // Subscribing on every connect is cheap and covers a broker that lost the session.
    this.client.subscribe(this.inTopic, { qos: 1 }, (err, granted) => {
      const refused = granted?.some((g) => g.qos === 128);
      if (err || refused) {
        this.log.warn('subscription refused', { workerId: this.workerId, topic: this.inTopic, error: err?.message });
      }
    });
    this.publishState().catch((err: Error) => this.log.warn('state publish failed', { workerId: this.workerId, error: err.message }));
    clearInterval(this.heartbeat);
    // ±20% per connection, so that many workers connected in one burst do not
    // heartbeat in lockstep forever.
    const period = (this.opts.heartbeatSeconds ?? 30) * 1000 * (0.8 + Math.random() * 0.4);
    this.heartbeat = setInterval(() => {
      if (this.client.connected) this.publishState().catch(() => undefined);
    }, period);
    this.heartbeat.unref();
    this.emit('connect', { sessionPresent });
  }

  private onClose(): void {
    clearInterval(this.heartbeat);
    const error = this.lastError;
    this.emit('disconnect', error ? { error } : {});
    if (this.closed) return;
    clearTimeout(this.reconnectTimer);
    // Full-jitter exponential backoff: 1000 workers losing the broker at once
    // must not all reconnect (and TLS-handshake) in the same second.
    const min = this.opts.reconnectMinMs ?? 1000;
    const max = this.opts.reconnectMaxMs ?? 30_000;
    const cap = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    const delay = min / 2 + Math.random() * (cap - min / 2);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      if (this.closed) return;
      // Keep the in-memory stores: unacknowledged QoS 1 publishes are resent.
      this.client.reconnect({ incomingStore: this.client.incomingStore, outgoingStore: this.client.outgoingStore });
    }, delay);
    this.reconnectTimer.unref();
  }

  private async dispatch(packet: IPublishPacket): Promise<void> {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const result = parseMessage<ToWorkerMessage>(payload, TO_WORKER_TYPES);
    if (packet.topic !== this.inTopic) {
      this.reject(`message on unexpected topic ${packet.topic}`, packet.topic);
      return;
    }
    if (!result.ok) {
      this.reject(result.reason, packet.topic);
      // A schedule we cannot act on is re-sent until accepted: say so, and the backend fails the run
      // after a few rejections instead of keeping this worker busy forever.
      const runId = rejectedScheduleRunId(payload);
      if (runId !== undefined) {
        const reject: RejectMessage = { type: 'reject', version: MESSAGE_VERSION, runId, reason: result.reason.slice(0, 4096) };
        await this.publish(reject).catch((err: Error) => this.log.warn('could not report a rejected schedule', { workerId: this.workerId, runId, error: err.message }));
      }
      return;
    }
    try {
      await this.opts.onMessage(result.message);
    } catch (err) {
      this.log.warn('message handler failed', { workerId: this.workerId, type: result.message.type, error: (err as Error).message });
    }
  }

  private reject(reason: string, topic: string): void {
    this.rejected++;
    this.log.warn('message rejected', { workerId: this.workerId, topic, reason });
    this.emit('rejected', { reason, topic });
  }
}

/** The run id of a payload that looks like a `schedule` with a well-formed `runId`, whatever else is wrong with it. */
function rejectedScheduleRunId(payload: Uint8Array): string | undefined {
  try {
    const data: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    if (typeof data !== 'object' || data === null) return undefined;
    const { type, runId } = data as { type?: unknown; runId?: unknown };
    return type === 'schedule' && typeof runId === 'string' && RUN_ID_PATTERN.test(runId) ? runId : undefined;
  } catch {
    return undefined;
  }
}
