import { describe, expect, it } from 'vitest';
import { Logger, REDACTED, redact } from '../../src/runtime/log.js';
import { redact as redactValue, redactText } from '../../src/runtime/redact.js';

function capture(): { lines: string[]; sink: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, sink: { write: (s: string) => void lines.push(s) } };
}

const fixed = (): Date => new Date('2025-01-02T03:04:05.678Z');

describe('Logger', () => {
  it('writes one JSON object per line with context from with()', () => {
    const { lines, sink } = capture();
    const log = new Logger({ sink, now: fixed }).with({ kind: 'WorkerPool', namespace: 'ns' });
    log.with({ name: 'pool-a' }).info('scaled', { from: 1, to: 3 });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith('\n')).toBe(true);
    expect(JSON.parse(lines[0] ?? '')).toEqual({
      ts: '2025-01-02T03:04:05.678Z',
      level: 'info',
      msg: 'scaled',
      kind: 'WorkerPool',
      namespace: 'ns',
      name: 'pool-a',
      from: 1,
      to: 3,
    });
  });

  it('drops lines below the level', () => {
    const { lines, sink } = capture();
    const log = new Logger({ sink, level: 'warn' });
    log.debug('a');
    log.info('b');
    log.warn('c');
    log.error('d');
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['c', 'd']);
    expect(log.enabled('info')).toBe(false);
  });

  it('has a text mode for terminals', () => {
    const { lines, sink } = capture();
    new Logger({ sink, format: 'text', now: fixed }).warn('pod stuck', { name: 'run-1', reason: 'Image pull', n: 2, labels: { a: 'b' } });
    expect(lines[0]).toBe('2025-01-02T03:04:05.678Z WARN  pod stuck name=run-1 reason="Image pull" n=2 labels={"a":"b"}\n');
  });

  it('serializes errors by name and message', () => {
    const { lines, sink } = capture();
    const err = Object.assign(new Error('boom'), { code: 'ECONNRESET' });
    new Logger({ sink }).error('failed', { error: err });
    expect((JSON.parse(lines[0] ?? '') as { error: unknown }).error).toEqual({
      name: 'Error',
      message: 'boom',
      code: 'ECONNRESET',
    });
  });

  it('never writes key material, whatever the call site passes', () => {
    const { lines, sink } = capture();
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----';
    const b64pem = Buffer.from(pem).toString('base64');
    new Logger({ sink }).with({ token: 'eyJhbGciOi' }).info(`got ${pem}`, {
      secretName: 'pool-creds',
      privateKey: 'abc',
      nested: { 'tls.key': 'x', list: [{ password: 'p' }, b64pem, `x${b64pem}`, `xy${b64pem}`] },
      clientCert: 'c',
      secret: 'opaque-secret-value',
      authorization: 'opaque-authorization-value',
      credentials: 'opaque-credentials-value',
    });
    const out = lines.join('');
    expect(out).not.toContain('MIIE');
    expect(out).not.toContain('abc');
    expect(out).not.toContain('eyJhbGciOi');
    expect(out).not.toContain(b64pem.slice(4, 20));
    expect(out).not.toContain('opaque-');
    const obj = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(obj.secretName).toBe('pool-creds');
    expect(obj).toMatchObject({
      msg: REDACTED,
      token: REDACTED,
      privateKey: REDACTED,
      clientCert: REDACTED,
      secret: REDACTED,
      authorization: REDACTED,
      credentials: REDACTED,
      nested: { 'tls.key': REDACTED, list: [{ password: REDACTED }, REDACTED, REDACTED, REDACTED] },
    });
  });
});

describe('redact', () => {
  // Every key name the module documents as naming a credential, bare and in the
  // spellings call sites use (camelCase, dotted, dashed, upper case).
  const sensitive = ['token', 'key', 'cert', 'certificate', 'crt', 'pem', 'csr', 'password', 'passwd', 'passphrase', 'secret', 'secrets', 'authorization', 'authHeader', 'auth', 'bearer', 'cookie', 'cookies', 'credential', 'credentials', 'signature'];
  it.each(sensitive)('replaces the value of a key named %s, however it is spelled', (name) => {
    const spellings = [name, `client${name[0]?.toUpperCase()}${name.slice(1)}`, `tls.${name}`, `x-${name}`, name.toUpperCase()];
    for (const key of spellings) expect(redact({ [key]: 'opaque value', name: 'kept' }), key).toEqual({ [key]: REDACTED, name: 'kept' });
  });

  it('leaves keys that only mention a credential alone', () => {
    expect(redact({ secretName: 's', tokenRef: 't', keyId: 'k', certificateName: 'c' })).toEqual({ secretName: 's', tokenRef: 't', keyId: 'k', certificateName: 'c' });
  });

  it('copies and leaves ordinary data alone', () => {
    const input = { name: 'w-1', count: 3, labels: { app: 'x' }, when: new Date(0) };
    expect(redact(input)).toEqual({ name: 'w-1', count: 3, labels: { app: 'x' }, when: '1970-01-01T00:00:00.000Z' });
  });

  it('survives cycles', () => {
    const a: Record<string, unknown> = { name: 'a' };
    a.self = a;
    expect(redact(a)).toEqual({ name: 'a', self: '[circular]' });
  });
});

// Cases found by mutation testing (docs/mutation.md): each fails on a surviving mutant of src/runtime/redact.ts.
describe('redact, at its edges', () => {
  it('joins a key across separators before matching it', () => {
    expect(redactValue({ 'auth-header': 'a', auth_header: 'b', 'pass.phrase': 'c' })).toEqual({ 'auth-header': REDACTED, auth_header: REDACTED, 'pass.phrase': REDACTED });
  });

  it('keeps empty, null and undefined values of sensitive keys as they are, so a log shows a credential is missing', () => {
    expect(redactValue({ token: undefined, password: null, secret: '' })).toStrictEqual({ token: undefined, password: null, secret: '' });
  });

  it('replaces raw bytes, and gives an error its name, message and code only when it has one', () => {
    expect(redactValue({ data: Buffer.from('abc'), bytes: new Uint8Array([1, 2]) })).toEqual({ data: REDACTED, bytes: REDACTED });
    expect(Object.keys(redactValue(new Error('boom')) as object)).toEqual(['name', 'message']);
    expect(redactValue(Object.assign(new Error('boom'), { code: 'ECONNRESET' }))).toEqual({ name: 'Error', message: 'boom', code: 'ECONNRESET' });
  });

  it('keeps the scheme of a bearer or basic credential and replaces the rest', () => {
    expect(redactText('Authorization: Bearer abc.def-ghi and Basic dXNlcjpwYXNz, end')).toBe(`Authorization: Bearer ${REDACTED} and Basic ${REDACTED}, end`);
  });

  it('replaces a registered secret of 16 characters or more, and ignores shorter ones', () => {
    const sixteen = 'abcdefghijklmnop';
    expect(redactText(`x ${sixteen} y`, { secrets: [sixteen] })).toBe(REDACTED);
    expect(redactText(`x ${sixteen.slice(1)} y`, { secrets: [sixteen.slice(1)] })).toBe(`x ${sixteen.slice(1)} y`);
  });
});
