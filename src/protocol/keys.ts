import { createPrivateKey, createPublicKey, generateKeyPair, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A PEM key pair. The private key is PKCS#1 (`BEGIN RSA PRIVATE KEY`), like `openssl genrsa`. */
export interface RsaKeyPair {
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
 */
export async function generateRsaKeyPair(bits = 2048): Promise<RsaKeyPair> {
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
 * Signs a node-forge certificate or CSR with Node's native RSA instead of
 * forge's pure-JS one (a 2048-bit private-key operation costs milliseconds in
 * JS and blocks the event loop; natively it is ~50x cheaper).
 *
 * Forge's `sign(key, md)` feeds the to-be-signed DER into `md` and then calls
 * `key.sign(md)`; we hand it a digest that only records the bytes and a key
 * whose `sign` signs them natively.
 */
export function signNatively(target: forge.pki.Certificate | forge.pki.CertificateSigningRequest, privateKey: KeyObject | string): void {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  let captured = '';
  interface Recorder {
    algorithm: string;
    update(bytes: string): Recorder;
  }
  const recorder: Recorder = {
    algorithm: 'sha256',
    update(bytes: string): Recorder {
      captured += bytes;
      return recorder;
    },
  };
  const signer = {
    sign(): string {
      return cryptoSign('sha256', Buffer.from(captured, 'binary'), key).toString('binary');
    },
  };
  // The casts are the point of this helper: forge only calls the two members provided.
  (target as forge.pki.Certificate).sign(
    signer as unknown as forge.pki.rsa.PrivateKey,
    recorder as unknown as forge.md.MessageDigest,
  );
}

/**
 * Makes a PEM certificate signing request for `privateKeyPem`.
 *
 * The subject is informational: the backend replaces it with the worker id it
 * assigns. The CSR proves possession of the key (it is self-signed).
 */
export function createCsr(privateKeyPem: string, commonName = 'worker'): string {
  // Only the public half goes into forge: parsing the whole private key in pure
  // JS (eight big integers) cost more than the rest of the CSR together.
  const key = createPrivateKey(privateKeyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromAsn1(forge.asn1.fromDer(spki.toString('binary')));
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  signNatively(csr, key);
  return forge.pki.certificationRequestToPem(csr);
}

/** A CSR that parsed and whose self-signature holds. */
export interface VerifiedCsr {
  csr: forge.pki.CertificateSigningRequest;
  publicKey: forge.pki.rsa.PublicKey;
}

/**
 * Parses a PEM CSR and checks its self-signature and key type/size.
 *
 * @throws Error naming what is wrong (`csr is not a PEM certificate request: ...`,
 *   `csr signature does not verify`, `csr key must be RSA of at least 2048 bits`).
 */
export function verifyCsrPem(pem: string): VerifiedCsr {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(pem);
  } catch (err) {
    throw new Error(`csr is not a PEM certificate request: ${(err as Error).message}`);
  }
  const pub = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!pub || typeof pub.n?.bitLength !== 'function' || pub.n.bitLength() < 2048) {
    throw new Error('csr key must be RSA of at least 2048 bits');
  }
  let ok = false;
  try {
    ok = csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('csr signature does not verify');
  return { csr, publicKey: pub };
}

/** The subject common name of a PEM certificate, or undefined. */
export function certificateCommonName(pem: string): string | undefined {
  const cert = forge.pki.certificateFromPem(pem);
  const cn = cert.subject.getField('CN') as { value?: unknown } | null;
  return typeof cn?.value === 'string' ? cn.value : undefined;
}

/** Whether `certPem`'s public key matches `privateKeyPem`. */
export function certificateMatchesKey(certPem: string, privateKeyPem: string): boolean {
  const cert = forge.pki.certificateFromPem(certPem);
  const certPub = forge.pki.publicKeyToPem(cert.publicKey);
  const a = createPublicKey(certPub).export({ type: 'spki', format: 'der' });
  const b = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  return a.equals(b);
}
