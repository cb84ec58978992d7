/**
 * Strict standard base64 (RFC 4648, padded) decoding with Go-compatible error
 * offsets.
 *
 * Node's `Buffer.from(s, 'base64')` silently skips invalid characters, which
 * would turn a truncated or corrupted Secret into a garbage key with a
 * misleading error much later. The real controller is written in Go and users
 * compare our events with its messages, so the error reports the same byte
 * offset that Go's `base64.StdEncoding.DecodeString` would (`\r` and `\n` are
 * ignored anywhere, as in Go).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DECODE_MAP: Int16Array = (() => {
  const map = new Int16Array(256).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) map[ALPHABET.charCodeAt(i)] = i;
  return map;
})();

const CR = 0x0d;
const LF = 0x0a;
const PAD = 0x3d;

/** Thrown by {@link decodeBase64Strict}; `offset` is the byte offset Go would report. */
export class Base64DecodeError extends Error {
  constructor(readonly offset: number) {
    super(`illegal base64 data at input byte ${offset}`);
    this.name = 'Base64DecodeError';
  }
}

function isNewline(b: number | undefined): boolean {
  return b === CR || b === LF;
}

/**
 * Decodes padded standard base64, rejecting anything Go's
 * `base64.StdEncoding` rejects, with the same offset.
 *
 * @throws {@link Base64DecodeError}
 */
export function decodeBase64Strict(text: string | Uint8Array): Buffer {
  const src = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const out: number[] = [];
  let si = 0;
  for (;;) {
    // One quantum: up to four significant characters.
    const dbuf = [0, 0, 0, 0];
    let dlen = 4;
    let j = 0;
    let finished = false;
    while (j < 4) {
      if (si === src.length) {
        if (j === 0) return Buffer.from(out);
        // A partial quantum without padding is an error in the padded encoding.
        throw new Base64DecodeError(si - j);
      }
      const c = src[si] as number;
      si++;
      const v = DECODE_MAP[c] as number;
      if (v >= 0) {
        dbuf[j] = v;
        j++;
        continue;
      }
      if (isNewline(c)) continue;
      if (c !== PAD) throw new Base64DecodeError(si - 1);
      // Padding: only valid after two or three significant characters.
      if (j === 0 || j === 1) throw new Base64DecodeError(si - 1);
      if (j === 2) {
        while (si < src.length && isNewline(src[si])) si++;
        if (si === src.length) throw new Base64DecodeError(src.length);
        if (src[si] !== PAD) throw new Base64DecodeError(si - 1);
        si++;
      }
      while (si < src.length && isNewline(src[si])) si++;
      if (si < src.length) throw new Base64DecodeError(si);
      dlen = j;
      finished = true;
      break;
    }
    const [a, b, c2, d] = dbuf as [number, number, number, number];
    const n = (a << 18) | (b << 12) | (c2 << 6) | d;
    if (dlen >= 2) out.push((n >> 16) & 0xff);
    if (dlen >= 3) out.push((n >> 8) & 0xff);
    if (dlen >= 4) out.push(n & 0xff);
    if (finished) return Buffer.from(out);
  }
}
