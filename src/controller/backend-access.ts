/**
 * One backend client per pool, made from the pool's credentials and
 * replaced when they change. The credentials are checked against the backend
 * once per change, before any worker is created with them.
 */
import { BackendClient, TerminalBackendError } from '../protocol/index.js';
import type { WorkerPoolObject } from './api-types.js';
import { readPoolCredentials, type CredentialsResult, type PoolCredentials } from './pool-credentials.js';
import type { Informer } from './runtime/informer.js';
import type { Secret } from './runtime/k8s-client.js';

interface Entry {
  readonly fingerprint: string;
  readonly client: BackendClient;
  verified: boolean;
}

export type VerifyResult = { readonly ok: true } | { readonly ok: false; readonly message: string };

export class BackendAccess {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly secrets: Informer<Secret>) {}

  credentials(pool: WorkerPoolObject): CredentialsResult {
    const namespace = pool.metadata.namespace ?? 'default';
    return readPoolCredentials(pool.spec, namespace, (name) => this.secrets.get(namespace, name));
  }

  client(poolKey: string, credentials: PoolCredentials): BackendClient {
    const existing = this.entries.get(poolKey);
    if (existing?.fingerprint === credentials.fingerprint) return existing.client;
    existing?.client.close();
    const client = new BackendClient({ token: credentials.token, privateKeyPem: credentials.privateKeyPem });
    this.entries.set(poolKey, { fingerprint: credentials.fingerprint, client, verified: false });
    return client;
  }

  /**
   * Asks the backend whether it accepts these credentials (a signed stats
   * call). A refusal is final until the credentials change; a network error
   * is thrown for the caller to retry.
   */
  async verify(poolKey: string, credentials: PoolCredentials): Promise<VerifyResult> {
    const client = this.client(poolKey, credentials);
    const entry = this.entries.get(poolKey) as Entry;
    if (entry.verified) return { ok: true };
    try {
      await client.poolStats();
    } catch (err) {
      if (err instanceof TerminalBackendError) return { ok: false, message: err.message };
      throw err;
    }
    entry.verified = true;
    return { ok: true };
  }

  forget(poolKey: string): void {
    this.entries.get(poolKey)?.client.close();
    this.entries.delete(poolKey);
  }

  /** Every pool's client, for metrics that read pool counters from the backend. */
  clients(): ReadonlyMap<string, BackendClient> {
    return new Map([...this.entries].map(([k, e]) => [k, e.client]));
  }

  closeAll(): void {
    for (const e of this.entries.values()) e.client.close();
    this.entries.clear();
  }
}
