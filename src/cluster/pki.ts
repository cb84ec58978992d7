import { generateKeyPair as generateKeyPairCallback } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateKeyPair = promisify(generateKeyPairCallback);

/** A PEM key pair as written to disk for etcd, kube-apiserver and kubeconfigs. */
export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

/** Everything a throw-away control plane needs; nothing here outlives it. */
export interface ControlPlanePki {
  ca: IssuedCertificate;
  serving: IssuedCertificate;
  admin: IssuedCertificate;
  serviceAccount: KeyPairPem;
}

// Native RSA generation runs on libuv's thread pool, so the four keys are
// made on all cores in about the time of one; node-forge would take seconds each.
export async function generateRsaKeyPair(): Promise<KeyPairPem> {
  const { privateKey, publicKey } = await generateKeyPair('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

interface CertificateRequest {
  commonName: string;
  organization?: string;
  subjectKey: KeyPairPem;
  issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
  isCa?: boolean;
  serverNames?: { dns: string[]; ips: string[] };
  clientAuth?: boolean;
  validDays: number;
}

function randomSerial(): string {
  // A positive 16-byte serial: the leading nibble is kept below 8 so the
  // DER integer is never read as negative.
  const hex = forge.util.bytesToHex(forge.random.getBytesSync(16));
  return `${(parseInt(hex[0] ?? '0', 16) & 0x7).toString(16)}${hex.slice(1)}`;
}

function issue(request: CertificateRequest): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(request.subjectKey.publicKeyPem);
  cert.serialNumber = randomSerial();
  // Backdated a little so a clock that lags behind by seconds still accepts it.
  cert.validity.notBefore = new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + request.validDays * 24 * 60 * 60 * 1000);
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: request.commonName }];
  if (request.organization !== undefined) {
    subject.push({ name: 'organizationName', value: request.organization });
  }
  cert.setSubject(subject);
  cert.setIssuer(request.issuer ? request.issuer.cert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: request.isCa === true, critical: true },
    request.isCa === true
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (request.isCa !== true) {
    extensions.push({
      name: 'extKeyUsage',
      serverAuth: request.serverNames !== undefined,
      clientAuth: request.clientAuth === true,
    });
  }
  if (request.serverNames) {
    extensions.push({
      name: 'subjectAltName',
      altNames: [
        ...request.serverNames.dns.map((value) => ({ type: 2, value })),
        ...request.serverNames.ips.map((ip) => ({ type: 7, ip })),
      ],
    });
  }
  if (request.issuer) {
    extensions.push({ name: 'authorityKeyIdentifier', keyIdentifier: request.issuer.cert.generateSubjectKeyIdentifier().getBytes() });
  }
  cert.setExtensions(extensions);
  const signingKey = request.issuer?.key ?? forge.pki.privateKeyFromPem(request.subjectKey.privateKeyPem);
  cert.sign(signingKey, forge.md.sha256.create());
  return cert;
}

/** Names the API server must answer to: loopback and the in-cluster service name. */
export const SERVING_NAMES = {
  dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
  ips: ['127.0.0.1'],
};

export async function createControlPlanePki(validDays = 365): Promise<ControlPlanePki> {
  const [caKey, servingKey, adminKey, serviceAccount] = await Promise.all([
    generateRsaKeyPair(),
    generateRsaKeyPair(),
    generateRsaKeyPair(),
    generateRsaKeyPair(),
  ]);
  const caCert = issue({ commonName: 'kube-workerpool-controller test CA', subjectKey: caKey, isCa: true, validDays });
  const issuer = { cert: caCert, key: forge.pki.privateKeyFromPem(caKey.privateKeyPem) };
  const servingCert = issue({
    commonName: 'kube-apiserver',
    subjectKey: servingKey,
    issuer,
    serverNames: SERVING_NAMES,
    validDays,
  });
  // O=system:masters is the group kube-apiserver grants everything to,
  // whatever RBAC says: the equivalent of a kind cluster's admin kubeconfig.
  const adminCert = issue({
    commonName: 'kwc-admin',
    organization: 'system:masters',
    subjectKey: adminKey,
    issuer,
    clientAuth: true,
    validDays,
  });
  return {
    ca: { certPem: forge.pki.certificateToPem(caCert), keyPem: caKey.privateKeyPem },
    serving: { certPem: forge.pki.certificateToPem(servingCert), keyPem: servingKey.privateKeyPem },
    admin: { certPem: forge.pki.certificateToPem(adminCert), keyPem: adminKey.privateKeyPem },
    serviceAccount,
  };
}
