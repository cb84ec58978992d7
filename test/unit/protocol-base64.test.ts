import { describe, expect, test } from 'vitest';
import { Base64DecodeError, decodeBase64Strict } from '../../src/protocol/base64.js';

// Expected results produced by Go's base64.StdEncoding.DecodeString ("|" = newline).
const GO_VECTORS: Array<[string, string | number]> = [
  ['aGVsbG8=', 'hello'],
  ['aGVsbG8', 4],
  ['aGVsbA', 4],
  ['aGVsbA==', 'hell'],
  ['aGVsbA=', 7],
  ['aGVsbA=x', 6],
  ['aGVs|bA==', 'hell'],
  ['a', 0],
  ['ab', 0],
  ['abc', 0],
  ['ab==', 'i'],
  ['a===', 1],
  ['====', 0],
  ['ab=c', 2],
  ['aGVsbA==aGVs', 8],
  ['aGVsbA==|', 'hell'],
  ['aGV$bA==', 3],
  ['aGVsbA=|=', 'hell'],
  ['aGVsbA|==', 'hell'],
  ['', ''],
  ['|', ''],
  ['ab|', 1],
  ['aGVsbG8=|x', 9],
  ['aGVsbA== ', 8],
  [' aGVsbA==', 0],
  ['aGVs-A==', 4],
];

describe('decodeBase64Strict', () => {
  test.each(GO_VECTORS)('%j behaves like Go', (input, expected) => {
    const text = input.replace(/\|/g, '\n');
    if (typeof expected === 'string') {
      expect(decodeBase64Strict(text).toString('latin1')).toBe(expected);
    } else {
      expect(() => decodeBase64Strict(text)).toThrow(new Base64DecodeError(expected));
      expect(() => decodeBase64Strict(text)).toThrow(`illegal base64 data at input byte ${expected}`);
    }
  });

  test('round-trips binary data of every length', () => {
    for (let n = 0; n < 70; n++) {
      const data = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      expect(decodeBase64Strict(data.toString('base64')).equals(data)).toBe(true);
    }
  });
});

// Cases found by mutation testing (docs/mutation.md).
describe('decodeBase64Strict, at its edges', () => {
  test('skips CR and LF anywhere, as Go does', () => {
    expect(decodeBase64Strict('aGVs\r\nbG8h\r\n').toString()).toBe('hello!');
    expect(decodeBase64Strict('aGVsbA=\r\n=\r\n').toString()).toBe('hell');
  });

  test('its error is a Base64DecodeError with the offset', () => {
    const err = (() => {
      try {
        decodeBase64Strict('aGV*');
      } catch (e) {
        return e as Base64DecodeError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(Base64DecodeError);
    expect(err?.name).toBe('Base64DecodeError');
    expect(err?.offset).toBe(3);
    expect(err?.message).toBe('illegal base64 data at input byte 3');
  });
});
