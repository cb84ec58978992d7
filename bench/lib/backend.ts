/**
 * The reference backend in this process, with two observation points the
 * measures need and the backend does not offer: the moment it hands each
 * message to its MQTT client (the "publish" a dispatch is timed from), and
 * every worker message it receives (how recovery is seen from outside the
 * controller). Both wrap BackendService methods; nothing in src/ changes.
 */
import { request } from '../../test/integration/backend-harness.js';
import { mkdtemp } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMosquitto, type MosquittoProcess } from '../../src/backend/mosquitto-process.js';
import { startBackend, type BackendOptions, type RunningBackend } from '../../src/backend/server.js';
import { BackendService, type WorkerSender } from '../../src/backend/service.js';
import type { RunStatusMessage, ScheduleMessage, StateMessage, StopMessage } from '../../src/protocol/messages.js';
import type { ProtocolVersion } from '../../src/protocol/version.js';
import { nowMs } from './watch.js';

export interface Sent {
  t: number;
  workerId: string;
  message: ScheduleMessage | StopMessage;
}

export interface Received {
  t: number;
  workerId: string;
  message: StateMessage | RunStatusMessage;
}

export interface BackendTap {
  onSend?: (s: Sent) => void;
  onReceive?: (r: Received) => void;
}

const tap: BackendTap = {};
let installed = false;

function install(): void {
  if (installed) return;
  const proto = BackendService.prototype as unknown as {
    setSender: (sender: WorkerSender) => void;
    handleWorkerMessage: (topic: string, poolId: string, workerId: string, msg: StateMessage | RunStatusMessage) => Promise<void>;
  };
  if (typeof proto.setSender !== 'function' || typeof proto.handleWorkerMessage !== 'function') {
    throw new Error('bench: BackendService.setSender/handleWorkerMessage changed; update bench/lib/backend.ts');
  }
  const setSender = proto.setSender;
  proto.setSender = function (this: unknown, sender: WorkerSender): void {
    setSender.call(this, {
      send(poolId, workerId, message) {
        tap.onSend?.({ t: nowMs(), workerId, message });
        sender.send(poolId, workerId, message);
      },
    });
  };
  const handle = proto.handleWorkerMessage;
  proto.handleWorkerMessage = function (this: unknown, topic, poolId, workerId, msg) {
    tap.onReceive?.({ t: nowMs(), workerId, message: msg });
    return handle.call(this, topic, poolId, workerId, msg);
  };
  installed = true;
}

export interface BenchBackend {
  backend: RunningBackend;
  tap: BackendTap;
  /** Log records by message text ("worker registered", "worker registered again", ...). */
  logCounts: Map<string, number>;
  admin<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** The broker's own process, when it is not the embedded one. */
  brokerPid?: number;
  stop(): Promise<void>;
}

/** The broker the workers connect to: the backend's embedded one (aedes, in this process), or mosquitto beside it. */
export type BenchBroker = 'embedded' | 'mosquitto';
export const BENCH_BROKERS: readonly BenchBroker[] = ['embedded', 'mosquitto'];

export async function startBenchBackend(protocolVersion?: ProtocolVersion, broker: BenchBroker = 'embedded'): Promise<BenchBackend> {
  install();
  const root = await mkdtemp(join(tmpdir(), 'kwc-bench-backend-'));
  const dataDir = join(root, 'data');
  const logCounts = new Map<string, number>();
  let mosquitto: MosquittoProcess | undefined;
  let brokerOptions: Partial<BackendOptions> = {};
  if (broker === 'mosquitto') {
    mosquitto = await startMosquitto({ dataDir, dir: join(root, 'mosquitto') });
    brokerOptions = { externalBroker: mosquitto.brokerUrl, crlFile: mosquitto.crlFile, onCrlWritten: mosquitto.reload };
  }
  const backend = await startBackend({
    dataDir,
    protocolVersion,
    ...brokerOptions,
    logLevel: 'info',
    // Counted, not kept: a 1000-worker run logs tens of thousands of lines.
    logSink: (line) => {
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '?';
      logCounts.set(msg, (logCounts.get(msg) ?? 0) + 1);
    },
  });
  const agent = new https.Agent({ ca: backend.caPem, keepAlive: true, maxSockets: 32 });
  const admin = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> =>
    request<T>({ apiUrl: backend.apiUrl, caPem: backend.caPem, agent }, method, path, body, backend.adminToken);
  return {
    backend,
    tap,
    logCounts,
    admin,
    async stop() {
      tap.onSend = undefined;
      tap.onReceive = undefined;
      agent.destroy();
      await backend.stop();
      await mosquitto?.stop();
    },
    brokerPid: mosquitto?.pid,
  };
}
