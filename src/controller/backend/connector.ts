/**
 * The controller's side of the backend protocol, as the controller uses it:
 * the backend's HTTPS API for one pool, and one worker's MQTT session. The
 * production connector speaks the real protocol; in-process reconciler tests
 * hand the manager their own backend at exactly this boundary.
 */
import {
  BackendClient,
  WorkerConnection,
  type BackendClientOptions,
  type RunStatusMessage,
  type WorkerConnectionEvents,
  type WorkerConnectionOptions,
  type WorkerState,
} from '../../protocol/index.js';

/** The backend API of one pool (see `BackendClient`). */
export type BackendApi = Pick<
  BackendClient,
  'register' | 'deregister' | 'drain' | 'undrain' | 'poolStats' | 'watchPoolStats' | 'runScript' | 'logState' | 'appendLog' | 'completeLog' | 'close'
>;

/** One worker's session with the broker (see `WorkerConnection`). */
export interface WorkerSession {
  readonly connected: boolean;
  readonly rejectedCount: number;
  start(): void;
  setState(state: WorkerState, runId?: string): Promise<void>;
  sendRunStatus(update: Omit<RunStatusMessage, 'type' | 'version'>): Promise<void>;
  close(): Promise<void>;
  on<E extends keyof WorkerConnectionEvents>(event: E, listener: (...args: WorkerConnectionEvents[E]) => void): unknown;
}

export interface BackendConnector {
  client(options: BackendClientOptions): BackendApi;
  session(options: WorkerConnectionOptions): WorkerSession;
}

/** The real protocol: HTTPS to the backend, MQTT over TLS to its broker. */
export const PROTOCOL_CONNECTOR: BackendConnector = {
  client: (options) => new BackendClient(options),
  session: (options) => new WorkerConnection(options),
};
