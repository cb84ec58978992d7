import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  classifyApiError,
  describeApiError,
  ignoreNotFound,
  isAlreadyExists,
  isConflict,
  isRetryable,
  retryAfterMs,
} from '../../src/runtime/errors.js';

function apiErr(code: number, body: unknown = {}, headers: Record<string, string> = {}): ApiException<unknown> {
  return new ApiException(code, `HTTP-Code: ${code}`, body, headers);
}

describe('classifyApiError', () => {
  it.each([
    [404, {}, 'notFound'],
    [409, { reason: 'AlreadyExists' }, 'alreadyExists'],
    [409, JSON.stringify({ reason: 'AlreadyExists' }), 'alreadyExists'],
    [409, { reason: 'Conflict' }, 'conflict'],
    [410, {}, 'gone'],
    [422, {}, 'invalid'],
    [429, {}, 'tooManyRequests'],
    [503, {}, 'serverError'],
    [403, {}, 'forbidden'],
  ])('HTTP %d %j -> %s', (code, body, kind) => {
    expect(classifyApiError(apiErr(code, body))).toBe(kind);
  });

  it('understands Watch errors and socket errors', () => {
    expect(classifyApiError(Object.assign(new Error('Gone'), { statusCode: 410 }))).toBe('gone');
    expect(classifyApiError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('network');
    expect(classifyApiError(new Error('x', { cause: { code: 'ECONNRESET' } }))).toBe('network');
    expect(classifyApiError(new Error('plain'))).toBe('unknown');
  });

  it('tells the retryable from the rest', () => {
    expect(isRetryable(apiErr(500))).toBe(true);
    expect(isRetryable(apiErr(409))).toBe(true);
    expect(isRetryable(apiErr(422))).toBe(false);
    expect(isConflict(apiErr(409, { reason: 'AlreadyExists' }))).toBe(false);
    expect(isAlreadyExists(apiErr(409, { reason: 'AlreadyExists' }))).toBe(true);
  });
});

describe('helpers', () => {
  it('reads Retry-After from the Status or the header', () => {
    expect(retryAfterMs(apiErr(429, { details: { retryAfterSeconds: 2 } }))).toBe(2000);
    expect(retryAfterMs(apiErr(429, {}, { 'Retry-After': '3' }))).toBe(3000);
    expect(retryAfterMs(apiErr(429))).toBeUndefined();
  });

  it('describes with the server message', () => {
    expect(describeApiError(apiErr(422, { message: 'spec.poolSize: Invalid value' }))).toBe(
      'spec.poolSize: Invalid value (HTTP 422)',
    );
  });

  it('ignoreNotFound swallows only 404', async () => {
    await expect(ignoreNotFound(Promise.reject(apiErr(404)))).resolves.toBeUndefined();
    await expect(ignoreNotFound(Promise.resolve(1))).resolves.toBe(1);
    await expect(ignoreNotFound(Promise.reject(apiErr(500)))).rejects.toBeInstanceOf(ApiException);
  });
});
