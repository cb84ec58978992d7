/**
 * Registrations (and renewals) this process made whose certificate the Secret
 * cache does not show yet. Without them, a Worker reconciled again right after registering
 * (its status write brings it back) reads the cached Secret without the
 * certificate and registers a second time. In memory only: the Secret is the
 * record, and a restarted controller reads the certificate from it.
 */
import type { WorkerSecretContent } from './secret.js';

interface Registration {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
  readonly caPem: string;
  /** For a renewal: the certificate it replaced, which the cache may still show. */
  readonly replaces?: string;
}

export class Registrations {
  private readonly byWorker = new Map<string, Registration>();

  /** The worker's registration was written to its Secret. */
  written(workerKey: string, registration: Registration): void {
    this.byWorker.set(workerKey, registration);
  }

  /**
   * The Secret's content as the cache shows it, completed with a registration
   * of the same key that the cache does not show yet.
   */
  complete(workerKey: string, cached: WorkerSecretContent): WorkerSecretContent {
    const written = this.byWorker.get(workerKey);
    if (cached.certificatePem !== undefined) {
      // A renewal the cache does not show yet: the replaced certificate is revoked, use the new one.
      if (written?.replaces !== undefined && written.replaces === cached.certificatePem) {
        return { privateKeyPem: written.privateKeyPem, certificatePem: written.certificatePem, caPem: written.caPem };
      }
      this.byWorker.delete(workerKey);
      return cached;
    }
    // A key replaced since (the Secret emptied by hand) needs a registration of its own.
    if (written === undefined || written.privateKeyPem !== cached.privateKeyPem) return cached;
    return { ...cached, certificatePem: written.certificatePem, caPem: written.caPem };
  }

  forget(workerKey: string): void {
    this.byWorker.delete(workerKey);
  }
}
