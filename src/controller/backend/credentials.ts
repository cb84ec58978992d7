/**
 * Reads a pool's token and private key from its Secret. Every failure comes
 * back as a message a user can act on; it goes verbatim into the
 * `WorkerPoolCannotRegister` event and the pool's CredentialsValid condition.
 */
import { createHash } from 'node:crypto';
import { decodeSecretPrivateKey, parsePoolToken, PoolCredentialsError, type PoolToken } from '../../protocol/index.js';
import { CredentialsReason, type CredentialsProblem } from '../../api/conditions.js';
import type { WorkerPoolSpec } from '../../api/types.js';
import type { Secret } from '../../runtime/k8s-client.js';

export interface PoolCredentials {
  readonly token: PoolToken;
  readonly privateKeyPem: string;
  /** Changes whenever the token or key changes; keys caches of backend clients. */
  readonly fingerprint: string;
}

/** What reading the Secret can find wrong (the backend's verdict comes later, see `access.ts`). */
export type SecretProblem = Extract<CredentialsProblem, 'CredentialsNotConfigured' | 'SecretNotFound' | 'SecretKeyMissing' | 'InvalidToken' | 'InvalidPrivateKey'>;

export type CredentialsResult =
  | { readonly ok: true; readonly credentials: PoolCredentials }
  | { readonly ok: false; readonly reason: SecretProblem; readonly message: string };

export interface SecretRef {
  readonly name: string;
  readonly key: string;
}

/** The Secrets a pool reads, by name (token and key may live in different Secrets). */
export function referencedSecrets(spec: WorkerPoolSpec): { token?: SecretRef; privateKey?: SecretRef } {
  return { token: spec.token?.secretKeyRef, privateKey: spec.privateKey?.secretKeyRef };
}

function secretValue(secret: Secret, key: string): string | undefined {
  const b64 = secret.data?.[key];
  if (b64 !== undefined) return Buffer.from(b64, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

/**
 * @param lookup returns the Secret of that name in the pool's namespace, or undefined if there is none
 */
export function readPoolCredentials(spec: WorkerPoolSpec, namespace: string, lookup: (name: string) => Secret | undefined): CredentialsResult {
  const refs = referencedSecrets(spec);
  if (refs.token === undefined || refs.privateKey === undefined) {
    return { ok: false, reason: CredentialsReason.CredentialsNotConfigured, message: 'spec.token and spec.privateKey are not set: the pool has no credentials to register workers with' };
  }
  const values: Partial<Record<'token' | 'privateKey', string>> = {};
  for (const field of ['token', 'privateKey'] as const) {
    const ref = refs[field] as SecretRef;
    const secret = lookup(ref.name);
    if (secret === undefined) {
      return { ok: false, reason: CredentialsReason.SecretNotFound, message: `secret ${namespace}/${ref.name} (spec.${field}.secretKeyRef) not found` };
    }
    const value = secretValue(secret, ref.key);
    if (value === undefined || value.trim() === '') {
      return { ok: false, reason: CredentialsReason.SecretKeyMissing, message: `secret ${namespace}/${ref.name} has no key "${ref.key}" (spec.${field}.secretKeyRef.key)` };
    }
    values[field] = value;
  }
  try {
    const token = parsePoolToken(values.token as string);
    const privateKeyPem = decodeSecretPrivateKey(values.privateKey as string);
    const fingerprint = createHash('sha256').update(values.token as string).update('\0').update(privateKeyPem).digest('hex').slice(0, 16);
    return { ok: true, credentials: { token, privateKeyPem, fingerprint } };
  } catch (err) {
    if (err instanceof PoolCredentialsError) {
      return { ok: false, reason: err.field === 'token' ? CredentialsReason.InvalidToken : CredentialsReason.InvalidPrivateKey, message: err.message };
    }
    throw err;
  }
}
