/**
 * One redaction for every writer a user or an operator reads: the
 * controller's logger (JSON and text), the backend's logger, Events and
 * conditions. Each is fed secrets in each shape, at any depth, and none may
 * come out; parse errors of Secret content name a position, never content.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/backend/log.js';
import { readPoolCredentials } from '../../src/controller/backend/credentials.js';
import { parseMessage } from '../../src/protocol/index.js';
import { setCondition } from '../../src/runtime/conditions.js';
import { EventRecorder } from '../../src/runtime/events.js';
import type { KubeClient } from '../../src/runtime/k8s-client.js';
import { Logger } from '../../src/runtime/log.js';

const pem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const pemBody = (pem.split('\n')[3] ?? '').slice(0, 40);
const b64 = Buffer.from(pem).toString('base64');
const SECRET_WORD = 'hunter2-correct-horse-battery';
const BEARER_TOKEN = 'sk_live_AbCdEf0123456789xyz';
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz';

/** Markers that must not appear in any output. */
const forbidden = [pemBody, b64.slice(20, 60), SECRET_WORD, BEARER_TOKEN, JWT.slice(0, 30), 'PRIVATE KEY'];

function nest(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = { level: i, inner: v, list: [v] };
  return v;
}

/** Each shape of a secret, as a field a careless call site might log. */
const shapes: Record<string, unknown> = {
  rawPem: pem,
  base64Pem: b64,
  // base64 of a PEM inside a longer base64 text, at each byte alignment
  embeddedBase64: [0, 1, 2].map((n) => Buffer.from(`${'x'.repeat(n)}data:${pem}`).toString('base64')),
  deep: nest(12, { note: pem }),
  deepKeyName: nest(9, { privateKey: SECRET_WORD }),
  authHeader: SECRET_WORD,
  bearer: SECRET_WORD,
  cookie: SECRET_WORD,
  'set-cookie': [SECRET_WORD],
  'x-wp-signature': SECRET_WORD,
  headers: { authorization: `Bearer ${BEARER_TOKEN}` },
  message: `request failed: Authorization: Bearer ${BEARER_TOKEN} was refused`,
  jwt: `token ${JWT} expired`,
  error: new Error(`cannot parse ${pem}`),
};

function assertClean(output: string): void {
  for (const marker of forbidden) expect(output, `output contains ${JSON.stringify(marker)}`).not.toContain(marker);
}

describe('one redaction', () => {
  it('keeps secrets out of the controller logger, JSON and text', () => {
    for (const format of ['json', 'text'] as const) {
      const lines: string[] = [];
      const log = new Logger({ format, sink: { write: (s: string) => void lines.push(s) } }).with({ context: { clientCert: pem } });
      log.info(`starting with ${pem}`, shapes);
      log.warn('one by one', { ...shapes, request: { method: 'GET', headers: { Cookie: SECRET_WORD } } });
      const out = lines.join('');
      assertClean(out);
      // Not everything is gone: the line still says what happened.
      expect(out).toContain('one by one');
      expect(out).toContain('was refused');
    }
  });

  it('keeps secrets, and registered ones, out of the backend logger', () => {
    const lines: string[] = [];
    const log = createLogger({ sink: (l) => lines.push(l), level: 'debug' });
    const adminToken = 'admin-token-0123456789abcdefghij';
    log.addSecret(adminToken);
    log.info(`with ${pem}`, shapes);
    log.error('nested', { a: nest(10, { detail: `the admin token is ${adminToken}` }), ...shapes });
    const out = lines.join('\n');
    assertClean(out);
    expect(out).not.toContain(adminToken);
    expect(out).toContain('was refused');
  });

  it('keeps secrets out of Events and conditions', async () => {
    const written: unknown[] = [];
    const client = {
      create: async (_ref: unknown, _ns: unknown, body: unknown) => {
        written.push(body);
        return body;
      },
      mergePatch: async (_ref: unknown, _ns: unknown, _name: unknown, body: unknown) => {
        written.push(body);
        return body;
      },
    } as unknown as KubeClient;
    const recorder = new EventRecorder(client, new Logger({ sink: { write: () => undefined } }), 'test', 'test-0');
    const target = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ns', uid: 'u' } };
    let conditions = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Broken', message: 'x' }, 1);
    for (const text of [pem, b64, `header Authorization: Bearer ${BEARER_TOKEN}`, `jwt ${JWT}`, `${'y'.repeat(2)}${b64}`]) {
      await recorder.record(target, 'Warning', 'Broken', `cannot use ${text}`);
      conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: 'Broken', message: `cannot use ${text}` }, 1);
      assertClean(JSON.stringify(conditions));
    }
    expect(written.length).toBeGreaterThanOrEqual(5);
    assertClean(JSON.stringify(written));
  });

  it('reports Secret content that is not JSON by position, never by content', () => {
    const spec = { poolSize: 1, token: { secretKeyRef: { name: 's', key: 'token' } }, privateKey: { secretKeyRef: { name: 's', key: 'privateKey' } } };
    const token = Buffer.from(`password=${SECRET_WORD}`).toString('base64');
    const result = readPoolCredentials(spec, 'ns', () => ({ metadata: { name: 's' }, stringData: { token, privateKey: b64 } }));
    expect(result).toMatchObject({ ok: false, reason: 'InvalidToken', message: 'token is not base64-encoded JSON: the decoded text is invalid JSON at byte 0' });
    const late = Buffer.from(`{"apiUrl": "https://x", ${SECRET_WORD}}`).toString('base64');
    const second = readPoolCredentials(spec, 'ns', () => ({ metadata: { name: 's' }, stringData: { token: late, privateKey: b64 } }));
    expect(second).toMatchObject({ ok: false, message: 'token is not base64-encoded JSON: the decoded text is invalid JSON at byte 24' });
    const payload = `{"type":"schedule","env":{"K":"${SECRET_WORD}"`;
    expect(parseMessage(payload)).toEqual({ ok: false, reason: `malformed JSON: invalid JSON at byte ${payload.length}` });
  });
});
