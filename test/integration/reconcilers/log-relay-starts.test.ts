/**
 * A controller restarted with many busy runs starts a log relay per run. Each
 * start asks the backend where the log stands (a signed call); they go a few
 * at a time, and only once the workers' sessions are back, so that the
 * restart's first seconds go to those sessions.
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

/**
 * Relays against the test cluster, with the backend at the protocol client's
 * boundary answering the log-state question with `logState`. Their run Pods
 * are gone: each relay ends after its first question.
 */
async function relaysOf(prefix: string, logState: () => Promise<void>, begin?: Promise<void>) {
  const namespace = await createTestNamespace(prefix);
  const backend: Pick<BackendApi, 'logState'> = {
    logState: async (): Promise<RunLogState> => {
      await logState();
      return { length: 0, complete: false, truncated: false, limit: 1024 };
    },
  };
  const settled: string[] = [];
  const stop = new AbortController();
  const relays = new LogRelays({
    client: KubeClient.fromKubeConfig(testKubeConfig(), { fieldManager: 'test' }),
    backendFor: async () => backend as BackendApi,
    log: silentLogger,
    onSettled: (t) => settled.push(t.runId),
    signal: stop.signal,
    begin,
  });
  const targets = (n: number): RelayTarget[] => Array.from({ length: n }, (_, i) => ({ runId: `run-${i}`, namespace, podName: `gone-${i}`, podUid: `uid-${i}`, workerKey: `${namespace}/w-${i}` }));
  const close = (): void => {
    stop.abort();
    relays.stopAll();
  };
  return { relays, settled, targets, close };
}

test('relays start a few at a time, and every one of them gets its turn', async () => {
  const waiting: (() => void)[] = [];
  let asking = 0;
  let peak = 0;
  let asked = 0;
  // Each log-state question waits until the test answers it.
  const { relays, settled, targets, close } = await relaysOf('log-relay-starts', async () => {
    asked++;
    peak = Math.max(peak, ++asking);
    await new Promise<void>((resolve) => waiting.push(resolve));
    asking--;
  });
  const runs = targets(3 * RELAY_START_SLOTS + 1);
  try {
    for (const t of runs) relays.ensure(t);
    await eventually('the first relays asking', () => asked === RELAY_START_SLOTS);
    await sleep(300);
    expect(asked).toBe(RELAY_START_SLOTS);
    while (settled.length < runs.length) {
      waiting.splice(0).forEach((answer) => answer());
      await sleep(20);
    }
    expect(peak).toBe(RELAY_START_SLOTS);
    expect(asked).toBe(runs.length);
    expect(settled.sort()).toEqual(runs.map((t) => t.runId).sort());
  } finally {
    close();
  }
}, 60_000);

test('relays make no pass before their gate opens, then every one does', async () => {
  let asked = 0;
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const { relays, settled, targets, close } = await relaysOf(
    'log-relay-gate',
    async () => {
      asked++;
    },
    gate,
  );
  try {
    for (const t of targets(3)) relays.ensure(t);
    await sleep(500);
    expect(asked).toBe(0);
    open();
    await eventually('every relay settled', () => settled.length === 3);
    expect(asked).toBe(3);
  } finally {
    close();
  }
}, 60_000);
