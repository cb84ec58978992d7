/** Runs `job(0)` .. `job(count - 1)`, at most `concurrency` at once, each next one as soon as a slot frees. */
export async function withConcurrency(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await job(next++);
    }),
  );
}
