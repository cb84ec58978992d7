import { describe, expect, test } from 'vitest';
import { jsonErrorIndex, JsonSyntaxError, parseJson } from '../../src/protocol/json.js';

// Where the scan says a text stops being JSON. Where V8's own JSON.parse error
// names a position, it is the same one (checked when this table was written),
// except for \u escapes, where the scan points at the "u" and V8 at the bad digit.
const INVALID: readonly (readonly [string, number])[] = [
  ['', 0],
  [' ', 1],
  ['{', 1],
  ['}', 0],
  ['{"a"', 4],
  ['{"a":', 5],
  ['{"a":1', 6],
  ['{"a":1,', 7],
  ['{"a":1,}', 7],
  ['{"a" 1}', 5],
  ['{a:1}', 1],
  ['{"a":1 "b":2}', 7],
  ['[', 1],
  ['[1', 2],
  ['[1,', 3],
  ['[1,]', 3],
  ['[1 2]', 3],
  [']', 0],
  ['[1]]', 3],
  ['{"a":[1,{"b":x}]}', 13],
  ['tru', 3],
  ['trux', 3],
  ['fals', 4],
  ['falsy', 4],
  ['nul', 3],
  ['nulL', 3],
  ['True', 0],
  ['-', 1],
  ['-a', 1],
  ['01', 1],
  ['1.', 2],
  ['1.e5', 2],
  ['1e', 2],
  ['1e+', 3],
  ['1E-x', 3],
  ['.5', 0],
  ['+1', 0],
  ['0x10', 1],
  ['1 2', 2],
  ['"abc', 4],
  ['"a\tb"', 2],
  ['"a\\x"', 3],
  ['"a\\u12"', 3],
  ['"a\\u12g4"', 3],
  ['"a\\u123"', 3],
  ['"a\\u12', 3],
  ['"a\\', 3],
  ['"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t"x', 24],
  ['"é" x', 4],
  ['\u00a0 1', 0],
  [' \t\n\r1 \t\n\r x', 10],
  ['{"a":1}{', 7],
  ['[true,false,null,-0.5e+3,"x",{}] ,', 33],
];

describe('jsonErrorIndex', () => {
  test.each(INVALID)('%j stops being JSON at %i', (text, index) => {
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
    expect(jsonErrorIndex(text)).toBe(index);
  });

  test('valid texts of every kind scan to their end', () => {
    for (const text of ['0', '-0', '12', '-1.25e+10', '1E-2', '1e5', 'true', 'false', 'null', '"a\\u00E9\\"\\\\\\/\\b\\f\\n\\r\\t"', ' {"a" : [ 1 , {} , [] , "" ] , "b":{"c":null} } ', '[]', '{}']) {
      expect(JSON.parse(text), text).not.toBeUndefined();
      expect(jsonErrorIndex(text), text).toBe(text.length);
    }
  });

  test('nesting is cut off past 512 levels, not before', () => {
    expect(jsonErrorIndex('['.repeat(513) + ']'.repeat(513))).toBe(1026);
    expect(jsonErrorIndex('['.repeat(514) + ']'.repeat(514))).toBe(513);
    expect(jsonErrorIndex('{"a":'.repeat(514) + '1' + '}'.repeat(514))).toBe(5 * 513);
  });
});

describe('parseJson', () => {
  test('parses what JSON.parse parses', () => {
    const value = { a: [1, -2.5, true, null, 'é\n'], b: { c: {} } };
    expect(parseJson(JSON.stringify(value))).toEqual(value);
  });

  test('names the byte offset of the first bad byte, never the text', () => {
    const err = (() => {
      try {
        parseJson('{"password":"é hunter2" x}');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(JsonSyntaxError);
    // "é" is two bytes: the bad "x" is character 24 and byte 25.
    expect((err as JsonSyntaxError).offset).toBe(25);
    expect((err as JsonSyntaxError).message).toBe('invalid JSON at byte 25');
    expect((err as JsonSyntaxError).name).toBe('JsonSyntaxError');
    expect(String(err)).not.toContain('hunter2');
  });
});
