/** The most log lines a page keeps; older ones drop off the top (the file keeps them all). */
export const MAX_LOG_LINES = 5_000;

/**
 * Appends a batch, keeping at most `max` of the newest lines. Offsets only grow within one file,
 * so a batch that starts at or before the last offset shown means training.log was truncated or
 * rotated: the view starts over with it, as `tail -F` does.
 */
export function appendLogLines<T extends { offset: number }>(
  current: readonly T[],
  batch: readonly T[],
  max = MAX_LOG_LINES,
): T[] {
  const last = current.at(-1);
  const first = batch[0];
  const restarted = last !== undefined && first !== undefined && first.offset <= last.offset;
  const all = restarted ? [...batch] : [...current, ...batch];
  return all.length > max ? all.slice(-max) : all;
}
