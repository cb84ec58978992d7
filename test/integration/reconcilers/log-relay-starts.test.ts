/**
 * A controller restarted with many busy runs starts a log relay per run. Each
 * start asks the backend where the log stands (a signed call); they go a few
 * at a time, so that the restart's first seconds go to the workers' sessions.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import type { BackendApi } from '../../../src/controller/backend/connector.js';
import { LogRelays, RELAY_START_SLOTS, type RelayTarget } from '../../../src/controller/runs/log-relay.js';
import type { RunLogState } from '../../../src/protocol/index.js';
import { KubeClient } from '../../../src/runtime/k8s-client.js';
import { silentLogger } from '../../../src/runtime/log.js';
import { createTestNamespace, testKubeConfig } from '../../setup/cluster-access.js';
import { eventually } from './harness.js';

test('relays start a few at a time, and every one of them gets its turn', async () => {
  const namespace = await createTestNamespace('log-relay-starts');
  const client = KubeClient.fromKubeConfig(testKubeConfig(), { fieldManager: 'test' });
  const waiting: (() => void)[] = [];
  let asking = 0;
  let peak = 0;
  let asked = 0;
  // The backend at the protocol client's boundary: each log-state question waits until the test answers it.
  const backend: Pick<BackendApi, 'logState'> = {
    logState: async (): Promise<RunLogState> => {
      asked++;
      peak = Math.max(peak, ++asking);
      await new Promise<void>((resolve) => waiting.push(resolve));
      asking--;
      return { length: 0, complete: false, truncated: false, limit: 1024 };
    },
  };
  const settled: string[] = [];
  const stop = new AbortController();
  const relays = new LogRelays({
    client,
    backendFor: async () => backend as BackendApi,
    log: silentLogger,
    onSettled: (t) => settled.push(t.runId),
    signal: stop.signal,
  });
  const runs = 3 * RELAY_START_SLOTS + 1;
  // Run Pods that are gone by now: each relay ends after its first question.
  const targets: RelayTarget[] = Array.from({ length: runs }, (_, i) => ({ runId: `run-${i}`, namespace, podName: `gone-${i}`, podUid: `uid-${i}`, workerKey: `${namespace}/w-${i}` }));
  try {
    for (const t of targets) relays.ensure(t);
    await eventually('the first relays asking', () => asked === RELAY_START_SLOTS);
    await sleep(300);
    expect(asked).toBe(RELAY_START_SLOTS);
    while (settled.length < runs) {
      waiting.splice(0).forEach((answer) => answer());
      await sleep(20);
    }
    expect(peak).toBe(RELAY_START_SLOTS);
    expect(asked).toBe(runs);
    expect(settled.sort()).toEqual(targets.map((t) => t.runId).sort());
  } finally {
    stop.abort();
    relays.stopAll();
  }
}, 60_000);

test('relays make no pass before their gate opens, then every one does', async () => {
  const namespace = await createTestNamespace('log-relay-gate');
  const client = KubeClient.fromKubeConfig(testKubeConfig(), { fieldManager: 'test' });
  let asked = 0;
  const backend: Pick<BackendApi, 'logState'> = {
    logState: async (): Promise<RunLogState> => {
      asked++;
      return { length: 0, complete: false, truncated: false, limit: 1024 };
    },
  };
  let open: () => void = () => undefined;
  const settled: string[] = [];
  const stop = new AbortController();
  const relays = new LogRelays({
    client,
    backendFor: async () => backend as BackendApi,
    log: silentLogger,
    onSettled: (t) => settled.push(t.runId),
    signal: stop.signal,
    begin: new Promise<void>((resolve) => (open = resolve)),
  });
  try {
    for (let i = 0; i < 3; i++) relays.ensure({ runId: `run-${i}`, namespace, podName: `gone-${i}`, podUid: `uid-${i}`, workerKey: `${namespace}/w-${i}` });
    await sleep(500);
    expect(asked).toBe(0);
    open();
    await eventually('every relay settled', () => settled.length === 3);
    expect(asked).toBe(3);
  } finally {
    stop.abort();
    relays.stopAll();
  }
}, 60_000);
