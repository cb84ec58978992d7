import { describe, expect, it } from 'vitest';
import {
  DurationError,
  formatDuration,
  formatDurationNs,
  parseDuration,
  parseDurationNs,
} from '../../src/runtime/duration.js';

describe('parseDuration (Go time.ParseDuration)', () => {
  it.each([
    ['0', 0],
    ['70m', 70 * 60_000],
    ['1h10m', 70 * 60_000],
    ['24h', 24 * 3_600_000],
    ['1.5h', 90 * 60_000],
    ['300ms', 300],
    ['1h2m3s4ms', 3_723_004],
    ['.5s', 500],
    ['5.s', 5000],
    ['-2s', -2000],
    ['+3s', 3000],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000ns', 0.002],
  ])('%s -> %d ms', (input, ms) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 9);
  });

  it('is exact where floats are not', () => {
    expect(parseDurationNs('1.1s')).toBe(1_100_000_000n);
    expect(parseDurationNs('0.000000001s')).toBe(1n);
  });

  it.each(['', '5', '1x', 'h', '1.h2', '.', '-', '1h 2m', '9223372037s'])('refuses %j', (input) => {
    expect(() => parseDuration(input)).toThrow(DurationError);
  });

  it('names the problem the way Go does', () => {
    expect(() => parseDuration('5')).toThrow('time: missing unit in duration "5"');
    expect(() => parseDuration('5y')).toThrow('time: unknown unit "y" in duration "5y"');
  });
});

describe('formatDuration (Go Duration.String)', () => {
  it.each([
    [0, '0s'],
    [70 * 60_000, '1h10m0s'],
    [24 * 3_600_000, '24h0m0s'],
    [90 * 60_000, '1h30m0s'],
    [300, '300ms'],
    [1500, '1.5s'],
    [61_000, '1m1s'],
    [-2000, '-2s'],
    [1.5, '1.5ms'],
    [0.0015, '1.5µs'],
  ])('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through the parser', () => {
    for (const s of ['1h10m0s', '1.5s', '300ms', '2h0m0.001s', '999ns', '12.345678ms']) {
      expect(formatDurationNs(parseDurationNs(s))).toBe(s);
    }
  });
});
