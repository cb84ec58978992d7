import { createPrivateKey, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { Base64DecodeError, decodeBase64Strict } from './base64.js';
import { JsonSyntaxError, parseJson } from './json.js';
import { DEFAULT_TOPIC_NAMESPACE, PROTOCOL_VERSIONS, type ProtocolVersion } from './version.js';

/**
 * The pool's connection settings. Serialized as base64 of JSON; that text is
 * what a user stores as the `token` key of the pool's Secret.
 */
export interface PoolToken {
  /**
   * The newest protocol version the backend speaks (it speaks the older ones
   * too); one of {@link PROTOCOL_VERSIONS}. It decides the type of the keys of
   * workers registered from now on (see `workerKeyTypeFor`); workers already
   * registered keep theirs.
   */
  protocolVersion: ProtocolVersion;
  /** Base URL of the backend HTTP API, `https://host:port`. */
  apiUrl: string;
  /** URL of the MQTT broker, `mqtts://host:port`. */
  brokerUrl: string;
  /** The pool id (a ULID). */
  poolId: string;
  /** PEM of the CA that signed both the API's and the broker's server certificates. */
  caCert: string;
  /** First topic level; `spacelift` when absent. */
  topicNamespace?: string;
}

/** Which credential a {@link PoolCredentialsError} is about. */
export type CredentialField = 'token' | 'privateKey';

/**
 * A pool token or private key that cannot be used. The message names the
 * cause and is meant to be shown to the user verbatim (for example in a
 * `WorkerPoolCannotRegister` event).
 */
export class PoolCredentialsError extends Error {
  constructor(
    readonly field: CredentialField,
    message: string,
  ) {
    super(message);
    this.name = 'PoolCredentialsError';
  }
}

/** Serializes a token exactly as it goes into the Secret: base64 of compact JSON. */
export function encodePoolToken(token: PoolToken): string {
  const body: PoolToken = {
    protocolVersion: token.protocolVersion,
    apiUrl: token.apiUrl,
    brokerUrl: token.brokerUrl,
    poolId: token.poolId,
    caCert: token.caCert,
    // Left out of the JSON when undefined.
    topicNamespace: token.topicNamespace,
  };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

/**
 * Strict base64 after dropping surrounding whitespace (a pasted value often
 * has some); error offsets still count from the start of the original text.
 */
function decodeTrimmed(text: string): Buffer {
  const lead = Buffer.byteLength(text) - Buffer.byteLength(text.trimStart());
  try {
    return decodeBase64Strict(text.trim());
  } catch (err) {
    if (err instanceof Base64DecodeError) throw new Base64DecodeError(err.offset + lead);
    throw err;
  }
}

function fail(message: string): never {
  throw new PoolCredentialsError('token', message);
}

function requireString(obj: Record<string, unknown>, field: string): string {
  const v = obj[field];
  if (v === undefined || v === null) fail(`token field "${field}" is missing`);
  if (typeof v !== 'string') fail(`token field "${field}" must be a string, got ${typeof v}`);
  if (v.length === 0) fail(`token field "${field}" is empty`);
  return v;
}

function requireUrl(obj: Record<string, unknown>, field: string, scheme: string): string {
  const v = requireString(obj, field);
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    fail(`token field "${field}" is not a URL: ${JSON.stringify(v)}`);
  }
  if (url.protocol !== scheme) fail(`token field "${field}" must use ${scheme}, got ${JSON.stringify(v)}`);
  return v;
}

const TOPIC_LEVEL = /^[A-Za-z0-9_.-]+$/;
const POOL_ID = /^[A-Za-z0-9_-]+$/;

/**
 * Parses and validates the `token` value of a pool Secret.
 *
 * Surrounding whitespace and line breaks (as left by `base64` without `-w 0`)
 * are tolerated; everything else is checked: base64, JSON, each field's
 * presence and type, the protocol version, URL schemes and the CA PEM.
 *
 * @throws {@link PoolCredentialsError} with `field === 'token'` and a message
 *   such as `token is not base64-encoded JSON: illegal base64 data at input byte 12`
 *   or `token field "brokerUrl" is missing`.
 */
export function parsePoolToken(text: string): PoolToken {
  let raw: Buffer;
  try {
    raw = decodeTrimmed(text);
  } catch (err) {
    if (err instanceof Base64DecodeError) fail(`token is not base64-encoded JSON: ${err.message}`);
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = parseJson(raw.toString('utf8'));
  } catch (err) {
    // The position only: the decoded text is the Secret's content.
    if (err instanceof JsonSyntaxError) fail(`token is not base64-encoded JSON: the decoded text is ${err.message}`);
    throw err;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('token is not base64-encoded JSON: the decoded value is not a JSON object');
  }
  const obj = parsed as Record<string, unknown>;
  const version = obj['protocolVersion'];
  if (version === undefined) fail('token field "protocolVersion" is missing');
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    fail(`token field "protocolVersion" must be an integer, got ${JSON.stringify(version)}`);
  }
  if (!isProtocolVersion(version)) {
    fail(`token protocolVersion ${version} is not supported (this build speaks ${PROTOCOL_VERSIONS.join(' and ')})`);
  }
  const apiUrl = requireUrl(obj, 'apiUrl', 'https:');
  const brokerUrl = requireUrl(obj, 'brokerUrl', 'mqtts:');
  const poolId = requireString(obj, 'poolId');
  if (!POOL_ID.test(poolId)) fail(`token field "poolId" has invalid characters: ${JSON.stringify(poolId)}`);
  const caCert = requireString(obj, 'caCert');
  try {
    forge.pki.certificateFromPem(caCert);
  } catch (err) {
    fail(`token field "caCert" is not a PEM certificate: ${(err as Error).message}`);
  }
  const token: PoolToken = { protocolVersion: version, apiUrl, brokerUrl, poolId, caCert };
  const ns = obj['topicNamespace'];
  if (ns !== undefined) {
    if (typeof ns !== 'string' || !TOPIC_LEVEL.test(ns)) {
      fail(`token field "topicNamespace" must be a single topic level like "${DEFAULT_TOPIC_NAMESPACE}", got ${JSON.stringify(ns)}`);
    }
    token.topicNamespace = ns;
  }
  return token;
}

function isProtocolVersion(n: number): n is ProtocolVersion {
  return (PROTOCOL_VERSIONS as readonly number[]).includes(n);
}

/**
 * Turns the `privateKey` value of a pool Secret (base64 of the PEM, as made by
 * `base64 -w 0`) into the PEM text, checking that it is an RSA private key.
 *
 * @throws {@link PoolCredentialsError} with `field === 'privateKey'` and a
 *   message such as `unable to base64 decode privateKey: illegal base64 data at input byte 4364`
 *   or `privateKey is not a PEM-encoded RSA private key`.
 */
export function decodeSecretPrivateKey(b64: string): string {
  let pem: string;
  try {
    pem = decodeTrimmed(b64).toString('utf8');
  } catch (err) {
    if (err instanceof Base64DecodeError) {
      throw new PoolCredentialsError('privateKey', `unable to base64 decode privateKey: ${err.message}`);
    }
    throw err;
  }
  assertRsaPrivateKeyPem(pem);
  return pem;
}

/**
 * Checks that `pem` is an unencrypted PEM RSA private key (PKCS#1 or PKCS#8).
 *
 * @throws {@link PoolCredentialsError} `privateKey is not a PEM-encoded RSA private key`
 */
export function assertRsaPrivateKeyPem(pem: string): void {
  const bad = (): never => {
    throw new PoolCredentialsError('privateKey', 'privateKey is not a PEM-encoded RSA private key');
  };
  // createPrivateKey refuses whatever is not PEM (DER, a public key, text), so no check of our own before it.
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return bad();
  }
  if (key.asymmetricKeyType !== 'rsa') bad();
}

/** The topic namespace of a token, defaulting to `spacelift`. */
export function tokenTopicNamespace(token: PoolToken): string {
  return token.topicNamespace ?? DEFAULT_TOPIC_NAMESPACE;
}
