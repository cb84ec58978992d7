/**
 * The MQTT sessions the controller holds, one per Worker, keyed by the
 * Worker's namespace/name. Only the leader holds them.
 */
import { createHash } from 'node:crypto';
import {
  type RunStatusMessage,
  type ToWorkerMessage,
  type WorkerCredentials,
  type WorkerState,
} from '../../protocol/index.js';
import { untilAborted } from '../../runtime/abort.js';
import type { Logger } from '../../runtime/log.js';
import { PROTOCOL_CONNECTOR, type BackendConnector, type WorkerSession } from './connector.js';

export interface SessionHandlers {
  /** A valid message for the worker. Resolve only once it is handled: the broker redelivers it otherwise. */
  onMessage(workerKey: string, message: ToWorkerMessage): Promise<void>;
  /** The session opened or closed. */
  onConnectionChange(workerKey: string, connected: boolean): void;
  /** A message failed validation and was dropped. */
  onRejected(workerKey: string, reason: string): void;
}

export interface SessionSpec {
  readonly brokerUrl: string;
  readonly topicNamespace: string;
  readonly credentials: WorkerCredentials;
  readonly initialState: { state: WorkerState; runId?: string };
}

interface Session {
  readonly connection: WorkerSession;
  readonly fingerprint: string;
  /** Replacing a connected session: counts as connected until the new one connects (or fails to). */
  handover: boolean;
  /** Opened, and has not yet said whether it connected. */
  opening: boolean;
  /** Last state announced, so that unchanged states cost no message. */
  state: string;
}

function fingerprintOf(spec: SessionSpec): string {
  return createHash('sha256')
    .update(spec.brokerUrl)
    .update(spec.topicNamespace)
    .update(spec.credentials.certificatePem)
    .update(spec.credentials.caPem)
    .digest('hex');
}

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private reconnects = 0;

  constructor(
    private readonly handlers: SessionHandlers,
    private readonly log: Logger,
    private readonly connector: BackendConnector = PROTOCOL_CONNECTOR,
  ) {}

  /**
   * Opens the session, or replaces it when the broker or credentials changed.
   * Idempotent. A session opened reports its connect, or its failure, through
   * onConnectionChange; until then it is {@link isOpening}.
   */
  ensure(workerKey: string, spec: SessionSpec): void {
    const fingerprint = fingerprintOf(spec);
    const existing = this.sessions.get(workerKey);
    if (existing?.fingerprint === fingerprint) return;
    // A replaced session (a renewed certificate, new credentials) ends with a clean DISCONNECT before
    // the new one connects: a takeover would end it without one, and the broker would publish its
    // will, telling the backend the worker went offline.
    const handover = existing?.connection.connected === true;
    const previous = existing === undefined ? undefined : Promise.race([existing.connection.close(), new Promise<void>((r) => setTimeout(r, 5_000).unref())]);
    const log = this.log.with({ worker: workerKey, workerId: spec.credentials.workerId });
    const connection = this.connector.session({
      brokerUrl: spec.brokerUrl,
      topicNamespace: spec.topicNamespace,
      credentials: spec.credentials,
      initialState: spec.initialState,
      // Debug lines, so that what the controller received (not what the backend sent) can be counted.
      onMessage: async (message) => {
        log.debug('message received', { type: message.type, runId: message.runId });
        await this.handlers.onMessage(workerKey, message);
        log.debug('message handled', { type: message.type, runId: message.runId });
      },
      logger: { info: (msg, fields) => log.info(msg, fields), warn: (msg, fields) => log.warn(msg, fields) },
    });
    let everConnected = false;
    const session: Session = { connection, fingerprint, state: `${spec.initialState.state}/${spec.initialState.runId ?? ''}`, handover, opening: true };
    const endHandover = setTimeout(() => (session.handover = false), 30_000);
    endHandover.unref();
    connection.on('connect', () => {
      if (everConnected) this.reconnects++;
      everConnected = true;
      session.handover = false;
      session.opening = false;
      clearTimeout(endHandover);
      this.handlers.onConnectionChange(workerKey, true);
    });
    connection.on('disconnect', () => {
      session.handover = false;
      session.opening = false;
      this.handlers.onConnectionChange(workerKey, false);
    });
    connection.on('rejected', ({ reason }) => this.handlers.onRejected(workerKey, reason));
    this.sessions.set(workerKey, session);
    if (previous === undefined) connection.start();
    else {
      void previous
        .catch(() => undefined)
        .then(() => {
          if (this.sessions.get(workerKey)?.connection === connection) connection.start();
        });
    }
  }

  has(workerKey: string): boolean {
    return this.sessions.has(workerKey);
  }

  /**
   * Whether the session was opened and has not yet said whether it connected:
   * it will, through onConnectionChange (a failure at the latest when its
   * connect times out).
   */
  isOpening(workerKey: string): boolean {
    return this.sessions.get(workerKey)?.opening === true;
  }

  isConnected(workerKey: string): boolean {
    const session = this.sessions.get(workerKey);
    return session !== undefined && (session.connection.connected || session.handover);
  }

  /** Announces the worker's state to the backend (now if connected, else on reconnect). */
  async setState(workerKey: string, state: WorkerState, runId?: string): Promise<void> {
    const session = this.sessions.get(workerKey);
    if (session === undefined) return;
    const next = `${state}/${runId ?? ''}`;
    if (session.state === next) return;
    session.state = next;
    await session.connection.setState(state, runId);
  }

  /**
   * Reports a run's progress and waits for the broker's acknowledgement,
   * which needs a reconnect when the session is down: `signal` ends the wait
   * (the report stays queued in the session). False when the worker has no
   * session to report through.
   */
  async sendRunStatus(workerKey: string, update: Omit<RunStatusMessage, 'type' | 'version'>, signal?: AbortSignal): Promise<boolean> {
    const session = this.sessions.get(workerKey);
    if (session === undefined) return false;
    await untilAborted(session.connection.sendRunStatus(update), signal);
    return true;
  }

  /** Closes cleanly: the broker keeps the persistent session and queues messages for later. */
  async close(workerKey: string): Promise<void> {
    const session = this.sessions.get(workerKey);
    if (session === undefined) return;
    this.sessions.delete(workerKey);
    await session.connection.close();
  }

  async closeAll(): Promise<void> {
    const keys = [...this.sessions.keys()];
    await Promise.all(keys.map((k) => this.close(k)));
  }

  get count(): number {
    return this.sessions.size;
  }

  /** Sessions opened that have not yet said whether they connected. */
  get openingCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.opening) n++;
    return n;
  }

  get connectedCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.connection.connected) n++;
    return n;
  }

  get reconnectCount(): number {
    return this.reconnects;
  }

  get rejectedCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.connection.rejectedCount;
    return n;
  }

  keys(): string[] {
    return [...this.sessions.keys()];
  }
}
