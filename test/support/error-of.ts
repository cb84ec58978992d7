/**
 * The error `f` throws, for tests that assert its class and exact message
 * (`expect(f).toThrow` matches a substring only). Fails the test when `f`
 * returns, or throws something that is not an Error.
 */
export function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    if (err instanceof Error) return err;
    throw err;
  }
  throw new Error('expected an error, got none');
}
