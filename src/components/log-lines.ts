/** The most log lines a page keeps; older ones drop off the top (the file keeps them all). */
export const MAX_LOG_LINES = 20_000;

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

/**
 * Puts an older page in front. Only lines before the first one shown are taken, so a page that
 * overlaps (the file grew between requests) adds nothing twice.
 */
export function prependLogLines<T extends { offset: number }>(
  older: readonly T[],
  current: readonly T[],
): T[] {
  const first = current[0];
  if (first === undefined) return [...older];
  return [...older.filter((line) => line.offset < first.offset), ...current];
}

/**
 * What a terminal shows of a line a program redrew with "\r" (tqdm's bars): the text after the
 * last "\r", ignoring trailing ones.
 */
export function displayText(text: string): string {
  const end = text.replace(/\r+$/, "");
  return end.slice(end.lastIndexOf("\r") + 1);
}
