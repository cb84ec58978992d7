import { describe, expect, test } from 'vitest';
import { checkInteger, checkLabelKey, checkLabelName, checkNonEmpty, checkObjectName, checkOneOf } from '../../constructs/validate.js';

// The construct props checks: what each accepts at its edges, and that each
// refusal names the prop and the value.
describe('construct prop checks', () => {
  test('label names: DNS-1123 labels of at most 63 characters', () => {
    for (const ok of ['a', '0', 'a-b', 'a1', 'x'.repeat(63)]) expect(() => checkLabelName('name', ok), ok).not.toThrow();
    for (const bad of ['', 'A', '-a', 'a-', 'a_b', 'a.b', ' a', 'a\n', 'x'.repeat(64)]) {
      expect(() => checkLabelName('spec.name', bad), bad).toThrow(
        `spec.name must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters), got ${JSON.stringify(bad)}`,
      );
    }
  });

  test('object names: DNS-1123 subdomains of at most 253 characters', () => {
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(longest).toHaveLength(253);
    for (const ok of ['a', 'a.b', 'a-1.b-2', '0.0', longest]) expect(() => checkObjectName('name', ok), ok).not.toThrow();
    for (const bad of ['', 'A', 'a..b', '.a', 'a.', 'a.-b', 'a_b', 'a\n', `${longest}e`]) {
      expect(() => checkObjectName('metadata.name', bad), bad).toThrow(
        `metadata.name must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters), got ${JSON.stringify(bad)}`,
      );
    }
  });

  test('integers within bounds, both ends included', () => {
    expect(() => checkInteger('replicas', 0, 0, 3)).not.toThrow();
    expect(() => checkInteger('replicas', 3, 0, 3)).not.toThrow();
    expect(() => checkInteger('replicas', Number.MAX_SAFE_INTEGER, 1)).not.toThrow();
    expect(() => checkInteger('replicas', -1, 0, 3)).toThrow('replicas must be an integer from 0 to 3, got -1');
    expect(() => checkInteger('replicas', 4, 0, 3)).toThrow('replicas must be an integer from 0 to 3, got 4');
    expect(() => checkInteger('replicas', 1.5, 0, 3)).toThrow('replicas must be an integer from 0 to 3, got 1.5');
    expect(() => checkInteger('replicas', Number.NaN, 0)).toThrow(`replicas must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got NaN`);
    expect(() => checkInteger('replicas', Number.MAX_SAFE_INTEGER + 2, 0)).toThrow(`replicas must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${Number.MAX_SAFE_INTEGER + 2}`);
  });

  test('non-empty strings: blank is empty', () => {
    expect(() => checkNonEmpty('image', 'x')).not.toThrow();
    expect(() => checkNonEmpty('image', ' x ')).not.toThrow();
    expect(() => checkNonEmpty('image', '')).toThrow('image must not be empty, got ""');
    expect(() => checkNonEmpty('image', ' \t')).toThrow('image must not be empty, got " \\t"');
  });

  test('one of a list', () => {
    expect(() => checkOneOf('logLevel', 'info', ['debug', 'info'])).not.toThrow();
    expect(() => checkOneOf('logLevel', 'trace' as 'info', ['debug', 'info'])).toThrow('logLevel must be one of debug, info, got "trace"');
  });

  test('label keys: an optional DNS prefix, then a name of at most 63 characters', () => {
    for (const ok of ['app', 'App_1.x-y', 'example.com/app', 'a/B', `p/${'x'.repeat(63)}`, 'x'.repeat(63)]) expect(() => checkLabelKey('labels', ok), ok).not.toThrow();
    for (const bad of ['', '/app', 'Example.com/app', 'a/', '-app', 'app-', '_a', 'a b', 'x'.repeat(64), 'a/b/c', 'app\n']) {
      expect(() => checkLabelKey('labels', bad), bad).toThrow(
        `labels must be a label key (an optional DNS prefix and "/", then at most 63 letters, digits, '-', '_' or '.'), got ${JSON.stringify(bad)}`,
      );
    }
  });
});
