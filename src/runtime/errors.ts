/**
 * Classification of Kubernetes API failures.
 *
 * Errors reach us in three shapes: an HTTP answer with a `code` and a `body`
 * ({@link KubeApiError} from our REST client, and client-node's `ApiException`,
 * whose `body` may be the Status's JSON text, from the tests' typed clients),
 * plain Errors with `statusCode` (a watch's ERROR event), and socket errors
 * (`ECONNREFUSED`, ...) with no HTTP status at all. Reconcilers should not care
 * which; they ask "is this a conflict?" here.
 *
 * @module
 */

/** The subset of a `meta/v1 Status` we look at. */
export interface ApiStatus {
  readonly kind?: string;
  readonly status?: string;
  readonly message?: string;
  readonly reason?: string;
  readonly code?: number;
  readonly details?: { readonly retryAfterSeconds?: number; readonly causes?: readonly { readonly message?: string; readonly field?: string }[] };
}

/** A non-2xx answer of the API server: its HTTP status, the decoded body (a Status, usually) and headers. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';

  constructor(
    readonly code: number,
    message: string,
    readonly body: unknown,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** An HTTP failure answer, ours or client-node's: a numeric `code` and a `body`. */
function isHttpAnswer(err: unknown): err is { code: number; body: unknown; headers?: unknown } {
  return err instanceof Error && 'body' in err && typeof (err as { code?: unknown }).code === 'number';
}

export type ApiErrorKind =
  | 'notFound'
  | 'alreadyExists'
  | 'conflict'
  | 'gone'
  | 'invalid'
  | 'badRequest'
  | 'unauthorized'
  | 'forbidden'
  | 'tooManyRequests'
  | 'serverError'
  | 'network'
  | 'unknown';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** The HTTP status of a failed API call, or undefined when the request never got an answer. */
export function httpStatus(err: unknown): number | undefined {
  if (!isRecord(err)) return undefined;
  for (const field of ['statusCode', 'code'] as const) {
    const v = err[field];
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
  }
  return undefined;
}

/** The Status object the API server sent with the failure, if any. */
export function apiStatus(err: unknown): ApiStatus | undefined {
  if (!isHttpAnswer(err)) return undefined;
  let body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  return isRecord(body) ? (body as ApiStatus) : undefined;
}

/** Sorts any error from an API call into the cases reconcilers handle differently. */
export function classifyApiError(err: unknown): ApiErrorKind {
  const status = httpStatus(err);
  switch (status) {
    case undefined: {
      const code = isRecord(err) ? err.code : undefined;
      const causeCode = isRecord(err) && isRecord(err.cause) ? err.cause.code : undefined;
      const isNet = [code, causeCode].some((c) => typeof c === 'string' && NETWORK_CODES.has(c));
      const isFetch = err instanceof Error && (err.name === 'FetchError' || err.name === 'AbortError');
      return isNet || isFetch ? 'network' : 'unknown';
    }
    case 400:
      return 'badRequest';
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
      return 'notFound';
    case 409:
      return apiStatus(err)?.reason === 'AlreadyExists' ? 'alreadyExists' : 'conflict';
    case 410:
      return 'gone';
    case 422:
      return 'invalid';
    case 429:
      return 'tooManyRequests';
    default:
      return status >= 500 ? 'serverError' : 'unknown';
  }
}

export const isNotFound = (err: unknown): boolean => classifyApiError(err) === 'notFound';
export const isAlreadyExists = (err: unknown): boolean => classifyApiError(err) === 'alreadyExists';
/** A lost optimistic-concurrency race (stale resourceVersion); re-read and try again. */
export const isConflict = (err: unknown): boolean => classifyApiError(err) === 'conflict';
export const isGone = (err: unknown): boolean => classifyApiError(err) === 'gone';
export const isInvalid = (err: unknown): boolean => classifyApiError(err) === 'invalid';

/** Failures that are likely to go away by themselves: throttling, server trouble, the network. */
export function isRetryable(err: unknown): boolean {
  const kind = classifyApiError(err);
  return kind === 'tooManyRequests' || kind === 'serverError' || kind === 'network' || kind === 'conflict';
}

/** The server's requested back-off (Retry-After or Status details), in ms, if it gave one. */
export function retryAfterMs(err: unknown): number | undefined {
  const fromBody = apiStatus(err)?.details?.retryAfterSeconds;
  if (typeof fromBody === 'number' && fromBody > 0) return fromBody * 1000;
  if (isHttpAnswer(err) && isRecord(err.headers)) {
    const header = Object.entries(err.headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
    const seconds = Number(header);
    if (header !== undefined && Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
  }
  return undefined;
}

/** A one-line description for logs and conditions: the Status message when there is one. */
export function describeApiError(err: unknown): string {
  const status = apiStatus(err);
  const code = httpStatus(err);
  if (status?.message) return code === undefined ? status.message : `${status.message} (HTTP ${code})`;
  if (err instanceof Error) return code === undefined ? err.message : `${err.message} (HTTP ${code})`;
  return String(err);
}

/** Resolves to undefined instead of rejecting when the object is not there; other failures propagate. */
export async function ignoreNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
