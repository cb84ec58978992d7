import { createPrivateKey, createPublicKey, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from './der.js';
import { PROTOCOL_VERSIONS, type ProtocolVersion } from './version.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A PEM key pair: the public key as SPKI (`BEGIN PUBLIC KEY`). */
export interface PemKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

/**
 * Generates an RSA-2048 key pair with Node's native crypto.
 *
 * Runs on libuv's threadpool, not the event loop: many calls in parallel use
 * every core (the pool has 4 threads unless `UV_THREADPOOL_SIZE` is set before
 * the process starts; set it to the core count on bigger machines, since key
 * generation also competes with DNS and file I/O for those threads). Native
 * generation costs ~0.2 s of one core; node-forge's pure-JS one ~3.5 s.
 * The private key is PKCS#1 (`BEGIN RSA PRIVATE KEY`), like `openssl genrsa`.
 */
export async function generateRsaKeyPair(bits = 2048): Promise<PemKeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** The SPKI PEM public key of a PEM private key. */
export function publicKeyPemOf(privateKeyPem: string): string {
  return createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * Generates an ECDSA P-256 key pair with Node's native crypto, the worker key
 * of protocol version 2: well under a millisecond where RSA-2048 takes ~0.1-0.2 s.
 * The private key is PKCS#8 (`BEGIN PRIVATE KEY`), like `openssl genpkey`.
 */
export async function generateEcdsaKeyPair(): Promise<PemKeyPair> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** The kinds of worker key: RSA (protocol version 1) and ECDSA P-256 (version 2). */
export type WorkerKeyType = 'rsa' | 'ecdsa-p256';

/** The key type of workers registered under `version`. */
export function workerKeyTypeFor(version: ProtocolVersion): WorkerKeyType {
  return version >= 2 ? 'ecdsa-p256' : 'rsa';
}

/**
 * The worker key types a backend that speaks `version` accepts: those of
 * every version up to it, so that workers registered before an upgrade keep
 * working.
 */
export function workerKeyTypesUpTo(version: ProtocolVersion): readonly WorkerKeyType[] {
  return [...new Set(PROTOCOL_VERSIONS.filter((v) => v <= version).map(workerKeyTypeFor))];
}

/** A new worker key pair of `type`: RSA-2048 or ECDSA P-256. */
export function generateWorkerKeyPair(type: WorkerKeyType): Promise<PemKeyPair> {
  return type === 'rsa' ? generateRsaKeyPair() : generateEcdsaKeyPair();
}

export const KEY_TYPE_NAMES: Readonly<Record<WorkerKeyType, string>> = { rsa: 'RSA of at least 2048 bits', 'ecdsa-p256': 'ECDSA P-256' };

/** The worker key type of a public or private key; undefined for any other key (RSA under 2048 bits, another curve). */
export function workerKeyTypeOf(key: KeyObject): WorkerKeyType | undefined {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) return 'rsa';
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  return undefined;
}

/** A key's type and size in words, for errors. */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `RSA of ${details?.modulusLength ?? '?'} bits`;
  if (key.asymmetricKeyType === 'ec') return details?.namedCurve === 'prime256v1' ? KEY_TYPE_NAMES['ecdsa-p256'] : `EC on curve ${details?.namedCurve ?? '?'}`;
  return key.asymmetricKeyType ?? 'an unknown key type';
}

/** PKCS#1 v1.5 with SHA-256, and ECDSA with SHA-256 (RFC 4055, RFC 5758): the RSA one takes a NULL parameter, the ECDSA one none. */
const CSR_SIGNATURE_ALGORITHMS: Readonly<Record<WorkerKeyType, Buffer>> = {
  rsa: der.sequence(der.oid('1.2.840.113549.1.1.11'), der.nullValue()),
  'ecdsa-p256': der.sequence(der.oid('1.2.840.10045.4.3.2')),
};

/**
 * Makes a PEM certificate signing request (PKCS#10, RFC 2986) for
 * `privateKeyPem`, RSA or ECDSA P-256, signed with SHA-256 by Node's native
 * crypto.
 *
 * The subject is informational: the backend replaces it with the worker id it
 * assigns. The CSR proves possession of the key (it is self-signed).
 *
 * Written out in DER here rather than with the X.509 library, which the
 * backend keeps for certificates and for reading CSRs: the library's path
 * (the key imported into WebCrypto twice, the request through its ASN.1
 * schema) took 3.8 s of the controller's main thread for 1000 workers in a
 * scale-out, about 4 ms a CSR (`npm run bench -- --workers 1000 --compiled
 * --cpu-prof`); this takes well under one for an ECDSA key. A CSR has one
 * fixed shape, and every one made here is read back by the backend's parser
 * and by `openssl req -verify` in the tests.
 *
 * @throws Error when the key is neither RSA of at least 2048 bits nor ECDSA P-256.
 */
export async function createCsr(privateKeyPem: string, commonName = 'worker'): Promise<string> {
  const key = createPrivateKey(privateKeyPem);
  const type = workerKeyTypeOf(key);
  if (type === undefined) throw new Error(`key must be ${KEY_TYPE_NAMES.rsa} or ${KEY_TYPE_NAMES['ecdsa-p256']}, got ${describeKey(key)}`);
  const subject = der.sequence(der.set(der.sequence(der.oid('2.5.4.3'), der.utf8String(commonName))));
  // version 0, subject, the key's SubjectPublicKeyInfo, no attributes ([0] IMPLICIT SET OF, empty).
  const info = der.sequence(der.integer(0), subject, createPublicKey(key).export({ type: 'spki', format: 'der' }), der.tlv(0xa0));
  // Node signs ECDSA in DER (dsaEncoding 'der' by default), as X.509 wants it.
  const request = der.sequence(info, CSR_SIGNATURE_ALGORITHMS[type], der.bitString(sign('sha256', info, key)));
  const body = request.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`;
}
