import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';
import { generateRsaKeyPair, signNatively } from '../protocol/keys.js';
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

function validity(cert: forge.pki.Certificate, lifetimeMs: number): void {
  // Backdated a little so that a peer with a slightly slow clock accepts it at once.
  cert.validity.notBefore = new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + lifetimeMs);
}

/**
 * The backend's certificate authority. It signs the API and broker server
 * certificates, every worker's client certificate and the backend's own MQTT
 * client certificate, so the one CA in the pool token anchors everything.
 */
export class CertificateAuthority {
  private constructor(
    readonly certPem: string,
    private readonly cert: forge.pki.Certificate,
    private readonly key: KeyObject,
  ) {}

  /** Loads `<dir>/ca.pem` and `<dir>/ca-key.pem`, creating them on first use. */
  static async loadOrCreate(dir: string): Promise<CertificateAuthority> {
    const certPath = path.join(dir, 'ca.pem');
    const keyPath = path.join(dir, 'ca-key.pem');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
      return new CertificateAuthority(certPem, forge.pki.certificateFromPem(certPem), createPrivateKey(keyPem));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
    cert.serialNumber = serial();
    validity(cert, 20 * 365 * DAY_MS);
    const subject = [
      { name: 'commonName', value: `workerpool reference backend CA ${randomBytes(4).toString('hex')}` },
      { name: 'organizationName', value: 'kube-workerpool-controller' },
    ];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    signNatively(cert, privateKeyPem);
    const certPem = forge.pki.certificateToPem(cert);
    await writeFile(keyPath, privateKeyPem, { mode: 0o600, flag: 'wx' });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, certPem, { mode: 0o644, flag: 'wx' });
    return new CertificateAuthority(certPem, cert, createPrivateKey(privateKeyPem));
  }

  private build(publicKey: forge.pki.PublicKey, subject: forge.pki.CertificateField[], lifetimeMs: number, extensions: object[]): string {
    const cert = forge.pki.createCertificate();
    cert.publicKey = publicKey;
    cert.serialNumber = serial();
    validity(cert, lifetimeMs);
    cert.setSubject(subject);
    cert.setIssuer(this.cert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
      ...extensions,
    ]);
    signNatively(cert, this.key);
    return forge.pki.certificateToPem(cert);
  }

  /** A server certificate (with a new key) for `hosts`: DNS names and IP addresses. */
  async issueServer(hosts: readonly string[], commonName: string): Promise<IssuedKeyPair> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const altNames = hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
    const certPem = this.build(forge.pki.publicKeyFromPem(publicKeyPem), [{ name: 'commonName', value: commonName }], 2 * 365 * DAY_MS, [
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ]);
    return { certPem, keyPem: privateKeyPem };
  }

  /** A client certificate (with a new key) for the backend's own broker identity. */
  async issueBackendClient(): Promise<IssuedKeyPair> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const certPem = this.issueClient(forge.pki.publicKeyFromPem(publicKeyPem), BACKEND_IDENTITY, undefined, 2 * 365 * DAY_MS);
    return { certPem, keyPem: privateKeyPem };
  }

  /**
   * A client certificate for an existing public key (a worker's, from its CSR):
   * CN = `commonName` (the worker id, which the broker uses as the identity),
   * OU = the pool id, for people reading the certificate.
   */
  issueClient(publicKey: forge.pki.PublicKey, commonName: string, poolId?: string, lifetimeMs = DEFAULT_WORKER_CERT_LIFETIME_MS): string {
    const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: commonName }];
    if (poolId !== undefined) subject.push({ name: 'organizationalUnitName', value: poolId });
    return this.build(publicKey, subject, lifetimeMs, [
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ]);
  }

  /** A client certificate (with a new key) for `commonName`, valid `lifetimeMs`; the backend uses it to take over a revoked worker's connection. */
  async issueShortLived(commonName: string, lifetimeMs: number): Promise<IssuedKeyPair & { serial: string; notAfter: string }> {
    const { privateKeyPem, publicKeyPem } = await generateRsaKeyPair();
    const certPem = this.issueClient(forge.pki.publicKeyFromPem(publicKeyPem), commonName, undefined, lifetimeMs);
    const x509 = new X509Certificate(certPem);
    return { certPem, keyPem: privateKeyPem, serial: x509.serialNumber, notAfter: new Date(x509.validTo).toISOString() };
  }

  /** The CA's revocation list of `revoked` (see `crl.ts`). */
  crl(revoked: readonly RevokedCertificate[], number: number, thisUpdate: Date, nextUpdate: Date): string {
    return buildCrl({ caCertPem: this.certPem, caKey: this.key, revoked, number, thisUpdate, nextUpdate });
  }
}
