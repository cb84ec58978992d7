/**
 * What a backend needs of X.509 beyond the worker's own side (keys.ts): CSRs
 * read and checked, and keys as WebCrypto pairs to sign certificates with the
 * X.509 library. Apart from keys.ts so that the controller, which only makes
 * CSRs, never loads the library: @peculiar/x509 and reflect-metadata cost it
 * 15.5 MiB of RSS and 0.8 s of start-up (measured with `node -e` on this
 * machine under load), which every restart and every idle worker pool paid.
 *
 * @module
 */
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { describeKey, KEY_TYPE_NAMES, workerKeyTypeOf, type WorkerKeyType } from './keys.js';
import { x509 } from './x509.js';

/** What WebCrypto calls the key and its SHA-256 signature. */
function webCryptoAlgorithm(type: WorkerKeyType): webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams {
  return type === 'rsa' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
}

/** The signing algorithm for a key of `type`: SHA-256 with RSA (PKCS#1 v1.5) or with ECDSA. */
export function signingAlgorithmFor(type: WorkerKeyType): webcrypto.RsaHashedImportParams | webcrypto.EcdsaParams {
  return type === 'rsa' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', hash: 'SHA-256' };
}

/**
 * A Node private key as a WebCrypto pair for signing with the X.509 library.
 *
 * @throws Error when the key is neither RSA of at least 2048 bits nor ECDSA P-256.
 */
export async function webCryptoKeyPair(privateKey: KeyObject): Promise<{ keys: webcrypto.CryptoKeyPair; type: WorkerKeyType }> {
  const type = workerKeyTypeOf(privateKey);
  if (type === undefined) throw new Error(`key must be ${KEY_TYPE_NAMES.rsa} or ${KEY_TYPE_NAMES['ecdsa-p256']}, got ${describeKey(privateKey)}`);
  const algorithm = webCryptoAlgorithm(type);
  const [priv, pub] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign']),
    webcrypto.subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), algorithm, true, ['verify']),
  ]);
  return { keys: { privateKey: priv, publicKey: pub }, type };
}

/** A CSR that parsed, whose key is of an accepted type and whose self-signature holds. */
export interface VerifiedCsr {
  /** SPKI PEM of the CSR's key. */
  publicKeyPem: string;
  keyType: WorkerKeyType;
}

/** A CSR whose key is not of a type the caller accepts. */
export class CsrKeyTypeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrKeyTypeError';
  }
}

const CSR_PEM = /-----BEGIN (NEW )?CERTIFICATE REQUEST-----/;

/**
 * Parses a PEM CSR and checks its key type and self-signature.
 *
 * @param accepted the key types the caller takes (see {@link workerKeyTypesUpTo}).
 * @throws Error naming what is wrong (`csr is not a PEM certificate request: ...`,
 *   `csr signature does not verify`), {@link CsrKeyTypeError}
 *   (`csr key must be RSA of at least 2048 bits, got ECDSA P-256`).
 */
export async function verifyCsrPem(pem: string, accepted: readonly WorkerKeyType[]): Promise<VerifiedCsr> {
  if (!CSR_PEM.test(pem)) throw new Error('csr is not a PEM certificate request: no "-----BEGIN CERTIFICATE REQUEST-----" line');
  let csr: x509.Pkcs10CertificateRequest;
  let publicKey: KeyObject;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
    publicKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new Error(`csr is not a PEM certificate request: ${(err as Error).message}`);
  }
  const keyType = workerKeyTypeOf(publicKey);
  if (keyType === undefined || !accepted.includes(keyType)) {
    throw new CsrKeyTypeError(`csr key must be ${accepted.map((t) => KEY_TYPE_NAMES[t]).join(' or ')}, got ${describeKey(publicKey)}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('csr signature does not verify');
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), keyType };
}
