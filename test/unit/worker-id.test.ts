import { expect, test } from 'vitest';
import { newWorkerId, WORKER_ID_PATTERN, workerName } from '../../src/controller/worker/id.js';

test('worker ids are lowercase ULIDs that sort by creation time', () => {
  const a = newWorkerId(1_700_000_000_000);
  const b = newWorkerId(1_700_000_000_001);
  expect(a).toMatch(WORKER_ID_PATTERN);
  expect(a < b).toBe(true);
  // 1700000000000 ms in Crockford base32, checked with an independent conversion.
  expect(a.slice(0, 10)).toBe('01hf7yat00');
});

test('worker ids do not repeat', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newWorkerId(0)));
  expect(ids.size).toBe(1000);
});

test('worker names are <pool name>-<worker id>', () => {
  expect(workerName('my-pool', '01HF4MVN00ABCDEFGHJKMNPQRS')).toBe('my-pool-01hf4mvn00abcdefghjkmnpqrs');
});
