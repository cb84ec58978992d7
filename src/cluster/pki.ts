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
  /** Present when the cluster runs its controller manager, scheduler and a node. */
  components?: ComponentPki;
}

/** One identity per component, each with only the rights Kubernetes' built-in RBAC gives that name. */
export interface ComponentPki {
  /** CN=system:kube-controller-manager. */
  controllerManager: IssuedCertificate;
  /** CN=system:kube-scheduler. */
  scheduler: IssuedCertificate;
  /** The API server's identity towards kubelets (logs, exec, port-forward); bound to system:kubelet-api-admin. */
  apiserverKubeletClient: IssuedCertificate;
  /** CN=system:node:<name>, O=system:nodes: what the Node authorizer and NodeRestriction expect. */
  kubeletClient: IssuedCertificate;
  /** The kubelet's serving certificate, for the node's address, which the API server verifies. */
  kubeletServing: IssuedCertificate;
}

/** The API server's user name for its calls to kubelets; bound to the built-in system:kubelet-api-admin role. */
export const APISERVER_KUBELET_CLIENT = 'kube-apiserver-kubelet-client';

export interface PkiOptions {
  validDays?: number;
  /** Extra IP addresses the API server serves on (the node's bridge address, the `kubernetes` Service's ClusterIP). */
  serverIps?: readonly string[];
  /** Certificates for the controller manager, scheduler and the kubelet of this node. */
  node?: { name: string; ip: string };
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

const pem = (cert: forge.pki.Certificate, key: KeyPairPem): IssuedCertificate => ({ certPem: forge.pki.certificateToPem(cert), keyPem: key.privateKeyPem });

export async function createControlPlanePki(options: PkiOptions = {}): Promise<ControlPlanePki> {
  const validDays = options.validDays ?? 365;
  const node = options.node;
  const keys = await Promise.all(Array.from({ length: node === undefined ? 4 : 9 }, () => generateRsaKeyPair()));
  const [caKey, servingKey, adminKey, serviceAccount] = keys as [KeyPairPem, KeyPairPem, KeyPairPem, KeyPairPem];
  const caCert = issue({ commonName: 'kube-workerpool-controller test CA', subjectKey: caKey, isCa: true, validDays });
  const issuer = { cert: caCert, key: forge.pki.privateKeyFromPem(caKey.privateKeyPem) };
  const servingCert = issue({
    commonName: 'kube-apiserver',
    subjectKey: servingKey,
    issuer,
    serverNames: { dns: SERVING_NAMES.dns, ips: [...SERVING_NAMES.ips, ...(options.serverIps ?? [])] },
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
  const out: ControlPlanePki = {
    ca: pem(caCert, caKey),
    serving: pem(servingCert, servingKey),
    admin: pem(adminCert, adminKey),
    serviceAccount,
  };
  if (node !== undefined) {
    const [cmKey, schedulerKey, kubeletClientKeyForApiserver, nodeKey, nodeServingKey] = keys.slice(4) as [KeyPairPem, KeyPairPem, KeyPairPem, KeyPairPem, KeyPairPem];
    const client = (commonName: string, subjectKey: KeyPairPem, organization?: string): IssuedCertificate =>
      pem(issue({ commonName, subjectKey, issuer, clientAuth: true, validDays, ...(organization !== undefined ? { organization } : {}) }), subjectKey);
    out.components = {
      controllerManager: client('system:kube-controller-manager', cmKey),
      scheduler: client('system:kube-scheduler', schedulerKey),
      apiserverKubeletClient: client(APISERVER_KUBELET_CLIENT, kubeletClientKeyForApiserver),
      kubeletClient: client(`system:node:${node.name}`, nodeKey, 'system:nodes'),
      kubeletServing: pem(issue({ commonName: node.name, subjectKey: nodeServingKey, issuer, serverNames: { dns: [node.name], ips: [node.ip] }, validDays }), nodeServingKey),
    };
  }
  return out;
}
