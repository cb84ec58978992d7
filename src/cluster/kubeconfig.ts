import { KubeConfig } from '@kubernetes/client-node';

export interface AdminKubeconfigInput {
  server: string;
  caCertPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  name?: string;
  /** The user entry's name; default `<name>-admin`. */
  user?: string;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/**
 * A self-contained kubeconfig for a client certificate (the admin's or a
 * component's), with the certificates embedded so the file can be copied or
 * exported without the state directory next to it. JSON is valid YAML, and
 * kubectl and every client library read it.
 */
export function renderAdminKubeconfig(input: AdminKubeconfigInput): string {
  const name = input.name ?? 'kwc';
  const user = input.user ?? `${name}-admin`;
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: input.server, 'certificate-authority-data': b64(input.caCertPem) } }],
    users: [
      {
        name: user,
        user: { 'client-certificate-data': b64(input.clientCertPem), 'client-key-data': b64(input.clientKeyPem) },
      },
    ],
    contexts: [{ name, context: { cluster: name, user } }],
    'current-context': name,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Loads a kubeconfig file into a client-node KubeConfig, as tests and tools need it. */
export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  // loadFromFile resolves certificate paths relative to the file, as kubectl does.
  kc.loadFromFile(path);
  return kc;
}
