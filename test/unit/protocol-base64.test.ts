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
