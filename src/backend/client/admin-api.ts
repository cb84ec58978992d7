/**
 * The reference backend's admin API, as the command-line client calls it:
 * HTTPS trusting only the backend's CA, the admin token as a bearer token,
 * and errors that say what to do about them.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** A failure to show the user as it is (no stack trace). */
export class ClientError extends Error {}

export interface RunView {
  id: string;
  poolId: string;
  state: string;
  workerId: string | null;
  reason: string | null;
  exitCode: number | null;
  createdAt: string;
  updatedAt: string;
  script: { sha256: string; bytes: number } | null;
  log: { bytes: number; complete: boolean; truncated: boolean };
}

export interface PoolView {
  id: string;
  name: string;
  pendingRuns: number;
  workers: { id: string; state: string; drained: boolean }[];
}

const TERMINAL = new Set(['finished', 'failed', 'stopped']);

const TLS_ERRORS = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_SIGNATURE_FAILURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

export class AdminApi {
  constructor(
    private readonly opts: { apiUrl: string; caPem: string; adminToken: string; adminTokenFile: string; caFile: string },
  ) {}

  createPool(name: string): Promise<{ id: string; token: string; privateKey: string }> {
    return this.json('POST', '/api/pools', { name });
  }

  listPools(): Promise<{ id: string; name: string }[]> {
    return this.json('GET', '/api/pools');
  }

  getPool(id: string): Promise<PoolView> {
    return this.json('GET', `/api/pools/${encodeURIComponent(id)}`);
  }

  createRun(body: Record<string, unknown>): Promise<{ id: string }> {
    return this.json('POST', '/api/runs', body);
  }

  listRuns(poolId?: string): Promise<RunView[]> {
    return this.json('GET', `/api/runs${poolId === undefined ? '' : `?poolId=${encodeURIComponent(poolId)}`}`);
  }

  getRun(id: string): Promise<RunView> {
    return this.json('GET', `/api/runs/${encodeURIComponent(id)}`);
  }

  stopRun(id: string): Promise<RunView> {
    return this.json('POST', `/api/runs/${encodeURIComponent(id)}/stop`);
  }

  /** Writes the run's log to `write` as it arrives; with `follow`, until the log is complete or the run ended. */
  async streamLog(id: string, follow: boolean, write: (chunk: Buffer) => boolean): Promise<void> {
    const res = await this.request('GET', `/api/runs/${encodeURIComponent(id)}/logs${follow ? '?follow=1' : ''}`);
    if ((res.statusCode ?? 0) >= 300) throw await this.failure(res, 'GET', `/api/runs/${id}/logs`);
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        if (!write(chunk)) {
          res.pause();
          process.stdout.once('drain', () => res.resume());
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
      res.on('aborted', () => reject(new ClientError(`the backend at ${this.opts.apiUrl} closed the log stream of run ${id} early (did it stop?)`)));
    });
  }

  /** The run once it is over (its log may end before the run's end reaches the backend). */
  async waitForEnd(id: string): Promise<RunView> {
    for (;;) {
      const run = await this.getRun(id);
      if (TERMINAL.has(run.state)) return run;
      await sleep(500);
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    if ((res.statusCode ?? 0) >= 300) throw await this.failure(res, method, path);
    const text = await readAll(res);
    return JSON.parse(text) as T;
  }

  private request(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    let url: URL;
    try {
      url = new URL(path, this.opts.apiUrl);
    } catch {
      throw new ClientError(`the backend's API URL ${JSON.stringify(this.opts.apiUrl)} is not a URL (--api-url, or <data-dir>/api-url)`);
    }
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          ca: this.opts.caPem,
          timeout: 30_000,
          headers: { authorization: `Bearer ${this.opts.adminToken}`, ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(data.length) }) },
        },
        (res) => {
          req.setTimeout(0);
          resolve(res);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 30 s'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== undefined && TLS_ERRORS.has(e.code)) {
          reject(new ClientError(`the backend at ${this.opts.apiUrl} presented a certificate that ${this.opts.caFile} does not trust (${e.code}): is that CA file from this backend's data directory?`));
        } else {
          reject(new ClientError(`cannot reach the backend at ${this.opts.apiUrl}: ${e.message}. Is it running (npm run backend -- --data-dir <dir>), and is --api-url right?`));
        }
      });
      req.end(data);
    });
  }

  private async failure(res: IncomingMessage, method: string, path: string): Promise<ClientError> {
    const text = await readAll(res).catch(() => '');
    let message = text.slice(0, 500);
    let code: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: string; code?: string };
      message = parsed.error ?? message;
      code = parsed.code;
    } catch {
      // not JSON: the text as it is
    }
    if (res.statusCode === 401) return new ClientError(`the backend refused the admin token in ${this.opts.adminTokenFile}: ${message}. Use the admin-token file of this backend's data directory (--admin-token-file or --data-dir).`);
    if (code === 'unknown-pool') return new ClientError(`${message} (npm run -s backend -- pools list shows the pools)`);
    if (code === 'unknown-run') return new ClientError(`${message} (npm run -s backend -- runs list shows the runs)`);
    return new ClientError(`${method} ${path}: the backend answered ${res.statusCode ?? '?'}: ${message}`);
  }
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
