/**
 * The backend CA's certificate revocation list (RFC 5280, version 2), for
 * brokers that check client certificates against a CRL (mosquitto's
 * `crlfile`). The embedded broker does not need it: it compares each
 * certificate's serial with the worker's registered one.
 *
 * Built with our own DER and Node's signing, so that it works for any CA key
 * type Node signs with (RSA now; ECDSA P-256 signs with `ecdsa-with-SHA256`).
 *
 * @module
 */
import { sign, X509Certificate, type KeyObject } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { bitString, certificateSubject, explicit, integer, nullValue, octetString, oid, sequence, time } from '../protocol/der.js';

export interface RevokedCertificate {
  /** Serial, hex. */
  readonly serial: string;
  readonly revokedAt: Date;
}

function signatureAlgorithm(key: KeyObject): Buffer {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return sequence(oid('1.2.840.113549.1.1.11'), nullValue()); // sha256WithRSAEncryption
    case 'ec':
      return sequence(oid('1.2.840.10045.4.3.2')); // ecdsa-with-SHA256
    default:
      throw new Error(`cannot sign a CRL with a ${String(key.asymmetricKeyType)} key`);
  }
}

/**
 * A PEM CRL listing `revoked`, signed by the CA.
 *
 * @param number the CRL number (monotonic: a newer list has a bigger one)
 * @param thisUpdate when it was made; relying parties that hold several CRLs of one issuer use the newest
 * @param nextUpdate when a newer list is due at the latest; OpenSSL refuses every certificate once it has passed
 */
export function buildCrl(opts: {
  caCertPem: string;
  caKey: KeyObject;
  revoked: readonly RevokedCertificate[];
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
}): string {
  const algorithm = signatureAlgorithm(opts.caKey);
  const issuer = certificateSubject(new X509Certificate(opts.caCertPem).raw);
  const entries = opts.revoked.map((r) => sequence(integer(r.serial), time(r.revokedAt)));
  const tbs = sequence(
    integer(1), // v2
    algorithm,
    issuer,
    time(opts.thisUpdate),
    time(opts.nextUpdate),
    ...(entries.length > 0 ? [sequence(...entries)] : []),
    explicit(0, sequence(sequence(oid('2.5.29.20'), octetString(integer(opts.number))))), // cRLNumber
  );
  const signature = sign('sha256', tbs, opts.caKey);
  const der = sequence(tbs, algorithm, bitString(signature));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}

/** How long a written CRL stays valid; it is re-signed daily, and on every revocation. */
export const CRL_VALIDITY_MS = 365 * 24 * 3600_000;

/**
 * Keeps the CRL files current: `<data-dir>/crl.pem` and, for an external
 * broker, the file its configuration reads. Writes are atomic and serialized,
 * and each CRL's thisUpdate is a later second than the previous one's:
 * OpenSSL, holding several CRLs of one issuer after a reload, uses the one
 * with the latest thisUpdate and ignores a tie.
 */
export class CrlWriter {
  private chain: Promise<void> = Promise.resolve();
  private lastSecond = 0;
  private dirty = false;

  constructor(
    private readonly files: readonly string[],
    private readonly make: (number: number, thisUpdate: Date, nextUpdate: Date) => string,
    private readonly nextNumber: () => number,
    /** After each write: tell the broker to reload (mosquitto: SIGHUP). */
    private readonly onWritten?: () => void | Promise<void>,
    private readonly onError?: (err: Error) => void,
  ) {}

  /** Resolves once every write asked for so far is done. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Writes a fresh CRL (coalescing calls made while one is being written); resolves once it is written and announced. */
  update(): Promise<void> {
    if (this.dirty) return this.chain;
    this.dirty = true;
    this.chain = this.chain.then(async () => {
      this.dirty = false;
      try {
        await this.write();
      } catch (err) {
        this.onError?.(err as Error);
      }
    });
    return this.chain;
  }

  private async write(): Promise<void> {
    let second = Math.floor(Date.now() / 1000);
    if (second <= this.lastSecond) {
      await new Promise((r) => setTimeout(r, (this.lastSecond + 1) * 1000 - Date.now() + 5));
      second = Math.floor(Date.now() / 1000);
    }
    this.lastSecond = second;
    const thisUpdate = new Date(second * 1000);
    const pem = this.make(this.nextNumber(), thisUpdate, new Date(thisUpdate.getTime() + CRL_VALIDITY_MS));
    for (const file of this.files) {
      const tmp = `${file}.tmp`;
      await writeFile(tmp, pem, { mode: 0o644 });
      await rename(tmp, file);
    }
    await this.onWritten?.();
  }
}
