/**
 * Runs `work` on every item, at most `limit` at a time; resolves when all have settled. Work
 * that shares one queue (the embedded database's single connection) is given a few items at a
 * time, so that a request arriving meanwhile waits behind a few of them, not behind all.
 * `work` must not throw: it handles its own failures.
 */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
