/**
 * Just enough DER (ITU-T X.690) to write a certificate revocation list, a
 * worker's certificate signing request (keys.ts) and to read a certificate's
 * subject: independent of the key type and of node-forge, which has no CRL
 * support.
 *
 * @module
 */

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
export const octetString = (b: Buffer): Buffer => tlv(0x04, b);
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00]);
export const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));

/** A non-negative INTEGER from hex (a certificate serial) or a number. */
export function integer(value: string | number): Buffer {
  let hex = typeof value === 'number' ? value.toString(16) : value.toLowerCase().replace(/^0+/, '');
  if (hex === '') hex = '0';
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if (((bytes[0] as number) & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const groups: number[] = [];
    let v = p;
    do {
      groups.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    out.push(...groups.map((g, i) => (i < groups.length - 1 ? g | 0x80 : g)));
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 section 5.1.2.4), whole seconds. */
export function time(d: Date): Buffer {
  const iso = d.toISOString();
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

interface Element {
  readonly tag: number;
  /** The whole element, header included. */
  readonly raw: Buffer;
  readonly content: Buffer;
}

function read(buf: Buffer, at: number): Element {
  const tag = buf[at] as number;
  let len = buf[at + 1] as number;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[at + 2 + i] as number);
    head += n;
  }
  return { tag, raw: buf.subarray(at, at + head + len), content: buf.subarray(at + head, at + head + len) };
}

function children(el: Element): Element[] {
  const out: Element[] = [];
  for (let at = 0; at < el.content.length; ) {
    const child = read(el.content, at);
    out.push(child);
    at += child.raw.length;
  }
  return out;
}

/** The DER of a certificate's subject Name (the issuer of the CRLs its key signs). */
export function certificateSubject(certDer: Buffer): Buffer {
  const tbs = children(read(certDer, 0))[0] as Element;
  const fields = children(tbs);
  // [0] version is optional; then serial, signature algorithm, issuer, validity, subject.
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  return (fields[offset + 4] as Element).raw;
}
