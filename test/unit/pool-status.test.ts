import { describe, expect, test } from 'vitest';
import type { WorkerObject, WorkerPoolObject, WorkerStatus } from '../../src/api/types.js';
import { computePoolStatus } from '../../src/controller/pool/status.js';
import { statusChanged } from '../../src/runtime/status.js';

const now = new Date('2026-01-01T00:00:00Z');
const pool: WorkerPoolObject = {
  apiVersion: 'workers.spacelift.io/v1beta1',
  kind: 'WorkerPool',
  metadata: { name: 'p', namespace: 'ns', generation: 4 },
  spec: { poolSize: 3 },
};

function worker(name: string, status: WorkerStatus, deleting = false): WorkerObject {
  return {
    apiVersion: 'workers.spacelift.io/v1beta1',
    kind: 'Worker',
    metadata: { name, namespace: 'ns', deletionTimestamp: deleting ? '2026-01-01T00:00:00Z' : undefined },
    spec: { poolName: 'p', workerId: name },
    status,
  };
}

const ok = { valid: true as const, poolId: 'pool1' };

describe('computePoolStatus', () => {
  test('counts connected, busy and idle workers', () => {
    const status = computePoolStatus(pool, ok, [
      worker('a', { registered: true, connected: true, state: 'Idle' }),
      worker('b', { registered: true, connected: true, state: 'Busy', currentRunID: 'r1' }),
      worker('c', { registered: false, state: 'Pending' }),
    ], now);
    expect(status).toMatchObject({ poolId: 'pool1', desiredPoolSize: 3, actualPoolSize: 2, busyWorkers: 1, idleWorkers: 1, selector: 'workers.spacelift.io/workerpool=pool1', observedGeneration: 4 });
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'ScalingUp', message: '2 of 3 workers registered and connected' });
  });

  test('a full pool is Ready', () => {
    const workers = ['a', 'b', 'c'].map((n) => worker(n, { registered: true, connected: true, state: 'Idle' }));
    expect(computePoolStatus(pool, ok, workers, now).conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'PoolReady' });
  });

  test('accepted credentials say which protocol version the token speaks and so which keys new workers get', () => {
    const message = (protocolVersion?: 1 | 2): string | undefined =>
      computePoolStatus(pool, { ...ok, protocolVersion }, [], now).conditions?.find((c) => c.type === 'CredentialsValid')?.message;
    expect(message(1)).toBe('the token and private key were accepted; protocol version 1: new workers get RSA keys');
    expect(message(2)).toBe('the token and private key were accepted; protocol version 2: new workers get ECDSA P-256 keys');
    expect(message()).toBe('the token and private key were accepted');
  });

  test('broken credentials leave the actual size empty and say why', () => {
    const status = computePoolStatus(pool, { valid: false, reason: 'InvalidPrivateKey', message: 'unable to base64 decode privateKey: illegal base64 data at input byte 4364' }, [], now);
    expect(status.actualPoolSize).toBeUndefined();
    expect(status.conditions?.find((c) => c.type === 'CredentialsValid')).toMatchObject({ status: 'False', reason: 'InvalidPrivateKey', message: expect.stringContaining('input byte 4364') });
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'CannotRegister' });
  });

  test('a draining busy worker counts as busy and the pool as scaling down', () => {
    const status = computePoolStatus({ ...pool, spec: { poolSize: 0 } }, ok, [worker('a', { registered: true, connected: true, state: 'Draining', currentRunID: 'r' })], now);
    expect(status.busyWorkers).toBe(1);
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: 'ScalingDown' });
  });

  test('workers being deleted are not counted', () => {
    const status = computePoolStatus(pool, ok, [worker('a', { registered: true, connected: true, state: 'Idle' }, true)], now);
    expect(status.actualPoolSize).toBe(0);
  });
});

test('recomputing the same status is not a change, so it costs no request', () => {
  const workers = [worker('a', { registered: true, connected: true, state: 'Idle' })];
  const first = computePoolStatus(pool, ok, workers, now);
  const again = computePoolStatus({ ...pool, status: first }, ok, workers, new Date('2026-01-01T01:00:00Z'));
  expect(statusChanged(first, again)).toBe(false);
  const scaled = computePoolStatus({ ...pool, status: first, spec: { poolSize: 1 } }, ok, workers, now);
  expect(statusChanged(first, scaled)).toBe(true);
});
