import { expect, test } from 'vitest';
import { setCondition } from '../../src/runtime/conditions.js';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const t1 = new Date('2026-01-01T00:05:00.000Z');

test('a new condition gets the current time', () => {
  const list = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Scaling', message: 'm' }, 3, t0);
  expect(list).toEqual([{ type: 'Ready', status: 'False', reason: 'Scaling', message: 'm', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z' }]);
});

test('the transition time moves only when the status flips', () => {
  const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 1, t0);
  const same = setCondition(first, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 2, t1);
  expect(same[0]).toMatchObject({ reason: 'B', observedGeneration: 2, lastTransitionTime: '2026-01-01T00:00:00Z' });
  const flipped = setCondition(same, { type: 'Ready', status: 'True', reason: 'C', message: 'c' }, 2, t1);
  expect(flipped[0].lastTransitionTime).toBe('2026-01-01T00:05:00Z');
});

test('other conditions are kept in place', () => {
  let list = setCondition(undefined, { type: 'A', status: 'True', reason: 'r', message: 'm' }, 1, t0);
  list = setCondition(list, { type: 'B', status: 'True', reason: 'r', message: 'm' }, 1, t0);
  list = setCondition(list, { type: 'A', status: 'False', reason: 'r', message: 'm' }, 1, t1);
  expect(list.map((c) => [c.type, c.status])).toEqual([['A', 'False'], ['B', 'True']]);
});
