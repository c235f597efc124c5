import { stat } from "node:fs/promises";
import { type LogCursor, type LogLine, readNewLines } from "../logs/log-cursor";

/**
 * Complete lines after the line that starts at byte `after` (null: from the beginning), reading
 * about `maxBytes` at a time (a line longer than that is read whole, up to a piece; see
 * log-cursor). Event ids are line offsets, so a reader resumes with the last id it saw. `more`:
 * the read stopped before the end of the file. Every call reads a bounded amount and either
 * returns a line or says there is no more, so a caller looping on `more` always advances.
 * `reset`: the file is now shorter than `after` (truncated); the lines are from its start.
 */
export async function readLinesAfter(
  path: string,
  after: number | null,
  maxBytes: number,
): Promise<{ lines: LogLine[]; more: boolean; reset?: "truncated" }> {
  const inode = await stat(path, { bigint: true }).then(
    (st) => String(st.ino),
    () => "",
  );
  if (!inode) return { lines: [], more: false };
  let cursor: LogCursor = { inode, offset: after ?? 0 };
  for (;;) {
    const read = await readNewLines(path, cursor, maxBytes);
    const more = read.partial === undefined;
    if (read.reset) return { lines: read.lines, more, reset: "truncated" };
    // The line at `after` itself (the reader has it) comes back first: drop it.
    const lines = after === null ? read.lines : read.lines.filter((l) => l.offset > after);
    if (lines.length > 0 || !more || read.cursor.offset <= cursor.offset) return { lines, more };
    // The window held only the line at `after`: go on past it.
    cursor = read.cursor;
  }
}
