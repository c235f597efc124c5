/** The most log lines a page keeps; older ones drop off the top (the file keeps them all). */
export const MAX_LOG_LINES = 5_000;

/** Appends a batch, keeping at most `max` of the newest lines. */
export function appendLogLines<T>(current: readonly T[], batch: readonly T[], max = MAX_LOG_LINES) {
  const all =
    current.length + batch.length > max
      ? [...current, ...batch].slice(-max)
      : [...current, ...batch];
  return all;
}
