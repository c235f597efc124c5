import { stat } from "node:fs/promises";
import { join } from "node:path";
import { taskDir } from "../home";
import { type LogLine, readNewLines } from "../supervisor/log-cursor";

export function trainingLogPath(home: string, taskId: string): string {
  return join(taskDir(home, taskId), "training.log");
}

/**
 * Complete lines after the line that starts at byte `after` (null: from the beginning), up to
 * about `maxBytes`. Event ids are line offsets, so a reader resumes with the last id it saw.
 */
export async function readLinesAfter(
  path: string,
  after: number | null,
  maxBytes: number,
): Promise<{ lines: LogLine[]; more: boolean }> {
  const inode = await stat(path).then(
    (st) => String(st.ino),
    () => "",
  );
  if (!inode) return { lines: [], more: false };
  const read = await readNewLines(path, { inode, offset: after ?? 0 }, maxBytes);
  const lines = after === null ? read.lines : read.lines.filter((l) => l.offset > after);
  const size = (await stat(path)).size;
  return { lines, more: read.cursor.offset < size && read.lines.length > 0 };
}
