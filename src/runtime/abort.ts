/**
 * Waiting with a way out: long waits (a broker acknowledgement that needs a
 * reconnect, a key being made) end when their work is cancelled.
 */

/** Resolves as `promise` does, or rejects with the signal's reason once it fires. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Whether `err` is the cancellation of aborted work rather than a failure. */
export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted === true && err === signal.reason) return true;
  return err instanceof Error && (err.name === 'AbortError' || (err as NodeJS.ErrnoException).code === 'ABORT_ERR');
}
