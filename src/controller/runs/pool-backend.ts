/**
 * The backend client of a run's pool, for what runs ask of the backend's
 * API beyond MQTT: the run's script, and its log.
 */
import type { WorkerPoolObject } from '../../api/types.js';
import { RetryLaterError } from '../../runtime/queue.js';
import type { BackendApi } from '../backend/connector.js';
import type { ControllerContext } from '../context.js';
import { objectKey } from '../keys.js';

/** How long to wait before trying again when the pool's credentials cannot be used (the pool reports why). */
const CREDENTIALS_RETRY_MS = 10_000;

/** @throws RetryLaterError while the pool's credentials cannot be used */
export async function poolBackend(ctx: Pick<ControllerContext, 'backends'>, pool: WorkerPoolObject): Promise<BackendApi> {
  const credentials = await ctx.backends.credentials(pool);
  if (!credentials.ok) throw new RetryLaterError(`the credentials of pool ${objectKey(pool)} cannot be used: ${credentials.message}`, CREDENTIALS_RETRY_MS);
  return ctx.backends.client(objectKey(pool), credentials.credentials);
}
