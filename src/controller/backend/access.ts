/**
 * One backend client per pool, made from the pool's credentials and
 * replaced when they change. The credentials are checked against the backend
 * once per change, before any worker is created with them.
 */
import { TerminalBackendError } from '../../protocol/index.js';
import type { WorkerPoolObject } from '../../api/types.js';
import { PROTOCOL_CONNECTOR, type BackendApi, type BackendConnector } from './connector.js';
import { readPoolCredentials, type CredentialsResult, type PoolCredentials } from './credentials.js';
import { ignoreNotFound } from '../../runtime/errors.js';
import { SECRETS, type KubeClient, type Secret } from '../../runtime/k8s-client.js';

interface Entry {
  readonly fingerprint: string;
  readonly client: BackendApi;
  verified: boolean;
}

export type VerifyResult = { readonly ok: true } | { readonly ok: false; readonly message: string };

export class BackendAccess {
  private readonly entries = new Map<string, Entry>();
  private readonly parsed = new Map<string, { readonly version: string; readonly result: CredentialsResult }>();

  constructor(
    private readonly secrets: { get(namespace: string | undefined, name: string): Secret | undefined },
    private readonly kube: KubeClient,
    private readonly connector: BackendConnector = PROTOCOL_CONNECTOR,
  ) {}

  /**
   * The pool's credentials from the Secret cache. A Secret the cache does not
   * have is looked up live before it is called missing: a Secret created just
   * before its pool may reach the cache after the pool does, and a false
   * "not found" warning would send the user chasing nothing.
   */
  async credentials(pool: WorkerPoolObject): Promise<CredentialsResult> {
    const namespace = pool.metadata.namespace ?? 'default';
    // Parsing the token's CA and the key costs milliseconds; every worker reconcile asks, so the
    // result is kept until either Secret (or the pool's reference to it) changes.
    const refs = [pool.spec.token?.secretKeyRef, pool.spec.privateKey?.secretKeyRef];
    const version = refs.map((r) => (r === undefined ? '-' : `${r.name}/${r.key}@${this.secrets.get(namespace, r.name)?.metadata?.resourceVersion ?? 'missing'}`)).join(',');
    const memoKey = `${namespace}/${pool.metadata.name ?? ''}`;
    const memo = this.parsed.get(memoKey);
    if (memo !== undefined && memo.version === version) return memo.result;
    const cached = readPoolCredentials(pool.spec, namespace, (name) => this.secrets.get(namespace, name));
    if (cached.ok || cached.reason !== 'SecretNotFound') {
      this.parsed.set(memoKey, { version, result: cached });
      return cached;
    }
    const live = new Map<string, Secret>();
    for (const ref of [pool.spec.token?.secretKeyRef, pool.spec.privateKey?.secretKeyRef]) {
      if (ref === undefined || live.has(ref.name)) continue;
      const secret = this.secrets.get(namespace, ref.name) ?? (await ignoreNotFound(this.kube.get(SECRETS, namespace, ref.name)));
      if (secret !== undefined) live.set(ref.name, secret);
    }
    return readPoolCredentials(pool.spec, namespace, (name) => live.get(name));
  }

  client(poolKey: string, credentials: PoolCredentials): BackendApi {
    const existing = this.entries.get(poolKey);
    if (existing?.fingerprint === credentials.fingerprint) return existing.client;
    existing?.client.close();
    const client = this.connector.client({ token: credentials.token, privateKeyPem: credentials.privateKeyPem });
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
    this.parsed.delete(poolKey);
  }

  /** Every pool's client, for metrics that read pool counters from the backend. */
  clients(): ReadonlyMap<string, BackendApi> {
    return new Map([...this.entries].map(([k, e]) => [k, e.client]));
  }

  closeAll(): void {
    for (const e of this.entries.values()) e.client.close();
    this.entries.clear();
  }
}
