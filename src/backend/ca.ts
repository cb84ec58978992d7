import { createPrivateKey, createPublicKey, randomBytes, X509Certificate, type KeyObject, type webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { signingAlgorithmFor, webCryptoKeyPair } from '../protocol/csr-verify.js';
import { generateRsaKeyPair, workerKeyTypeOf } from '../protocol/keys.js';
import { x509 } from '../protocol/x509.js';
import { buildCrl, type RevokedCertificate } from './crl.js';

/** CN of the backend's own MQTT identity; worker ids (ULIDs) can never equal it. */
export const BACKEND_IDENTITY = 'backend';

const DAY_MS = 24 * 3600 * 1000;

/** Default lifetime of worker client certificates; the controller renews each one well before it ends. */
export const DEFAULT_WORKER_CERT_LIFETIME_MS = 30 * DAY_MS;

/** An issued certificate with its freshly generated key. */
export interface IssuedKeyPair {
  certPem: string;
  keyPem: string;
}

function serial(): string {
  // Positive 128-bit serial: clear the top bit of the first byte.
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

function validity(lifetimeMs: number): { notBefore: Date; notAfter: Date } {
  // Backdated a little so that a peer with a slightly slow clock accepts it at once.
  return { notBefore: new Date(Date.now() - 5 * 60 * 1000), notAfter: new Date(Date.now() + lifetimeMs) };
}

/** The CA's own key is RSA: what it signs with, whatever the key of the certificate it signs. */
const CA_SIGNING = signingAlgorithmFor('rsa');

/**
 * Key usage for a leaf key: an RSA key also enciphers (TLS 1.2's RSA key
 * exchange); an ECDSA key only signs, and a certificate saying otherwise is
 * refused by strict peers.
 */
function leafKeyUsage(publicKey: KeyObject): x509.KeyUsagesExtension {
  const flags = x509.KeyUsageFlags.digitalSignature | (publicKey.asymmetricKeyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0);
  return new x509.KeyUsagesExtension(flags, true);
}

/**
 * The backend's certificate authority. It signs the API and broker server
 * certificates, every worker's client certificate (RSA or ECDSA P-256 key)
 * and the backend's own MQTT client certificate, so the one CA in the pool
 * token anchors everything. Certificates are built with @peculiar/x509 and
 * signed through Node's WebCrypto; a CA written by an earlier version
 * (node-forge) loads as it is.
 */
export class CertificateAuthority {
  private constructor(
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    /** For the CRL (see `crl.ts`). */
    private readonly key: KeyObject,
    private readonly signingKey: webcrypto.CryptoKey,
    /** Subject key identifier of the CA, hex: every certificate's authority key identifier. */
    private readonly keyId: string,
  ) {}

  private static async of(certPem: string, keyPem: string): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(certPem);
    const key = createPrivateKey(keyPem);
    const keyId = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId;
    const { keys } = await webCryptoKeyPair(key);
    return new CertificateAuthority(certPem, cert, key, keys.privateKey, keyId);
  }

  /** Loads `<dir>/ca.pem` and `<dir>/ca-key.pem`, creating them on first use. */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    const certPath = path.join(dir, 'ca.pem');
    const keyPath = path.join(dir, 'ca-key.pem');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
      return await CertificateAuthority.of(certPem, keyPem);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const { privateKeyPem } = await generateRsaKeyPair();
    const { keys } = await webCryptoKeyPair(createPrivateKey(privateKeyPem));
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: [{ CN: [`workerpool reference backend CA ${randomBytes(4).toString('hex')}`] }, { O: ['kube-workerpool-controller'] }],
      ...validity(20 * 365 * DAY_MS),
      keys,
      signingAlgorithm: CA_SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = `${cert.toString('pem')}\n`;
    await writeFile(keyPath, privateKeyPem, { mode: 0o600, flag: 'wx' });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, certPem, { mode: 0o644, flag: 'wx' });
    return CertificateAuthority.of(certPem, privateKeyPem);
  }

  private async build(publicKey: KeyObject, subject: x509.JsonName, lifetimeMs: number, extensions: x509.Extension[]): Promise<string> {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: this.cert.subjectName,
      ...validity(lifetimeMs),
      publicKey: publicKey.export({ type: 'spki', format: 'der' }),
      signingKey: this.signingKey,
      signingAlgorithm: CA_SIGNING,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.AuthorityKeyIdentifierExtension(this.keyId), leafKeyUsage(publicKey), ...extensions],
    });
    return `${cert.toString('pem')}\n`;
  }

  /** A server certificate (with a new RSA key) for `hosts`: DNS names and IP addresses. */
  async issueServer(hosts: readonly string[], commonName: string): Promise<IssuedKeyPair> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const altNames = hosts.map((h): x509.JsonGeneralName => (isIP(h) ? { type: 'ip', value: h } : { type: 'dns', value: h }));
    const certPem = await this.build(createPublicKey(publicKeyPem), [{ CN: [commonName] }], 2 * 365 * DAY_MS, [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(altNames),
    ]);
    return { certPem, keyPem: privateKeyPem };
  }

  /** A client certificate (with a new RSA key) for the backend's own broker identity. */
  async issueBackendClient(): Promise<IssuedKeyPair> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const certPem = await this.issueClient(publicKeyPem, BACKEND_IDENTITY, undefined, 2 * 365 * DAY_MS);
    return { certPem, keyPem: privateKeyPem };
  }

  /**
   * A client certificate for an existing public key (a worker's, from its CSR:
   * RSA of at least 2048 bits or ECDSA P-256): CN = `commonName` (the worker
   * id, which the broker uses as the identity), OU = the pool id, for people
   * reading the certificate.
   *
   * @param publicKeyPem SPKI PEM (`BEGIN PUBLIC KEY`).
   */
  async issueClient(publicKeyPem: string, commonName: string, poolId?: string, lifetimeMs = DEFAULT_WORKER_CERT_LIFETIME_MS): Promise<string> {
    const publicKey = createPublicKey(publicKeyPem);
    if (workerKeyTypeOf(publicKey) === undefined) throw new Error(`client key must be RSA of at least 2048 bits or ECDSA P-256, got ${publicKey.asymmetricKeyType ?? 'an unknown key type'}`);
    const subject: x509.JsonName = [{ CN: [commonName] }];
    if (poolId !== undefined) subject.push({ OU: [poolId] });
    return this.build(publicKey, subject, lifetimeMs, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]);
  }

  /** A client certificate (with a new key) for `commonName`, valid `lifetimeMs`; the backend uses it to take over a revoked worker's connection. */
  async issueShortLived(commonName: string, lifetimeMs: number): Promise<IssuedKeyPair & { serial: string; notAfter: string }> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const certPem = await this.issueClient(publicKeyPem, commonName, undefined, lifetimeMs);
    const issued = new X509Certificate(certPem);
    return { certPem, keyPem: privateKeyPem, serial: issued.serialNumber, notAfter: new Date(issued.validTo).toISOString() };
  }

  /** The CA's revocation list of `revoked` (see `crl.ts`). */
  crl(revoked: readonly RevokedCertificate[], number: number, thisUpdate: Date, nextUpdate: Date): string {
    return buildCrl({ caCertPem: this.certPem, caKey: this.key, revoked, number, thisUpdate, nextUpdate });
  }
}
