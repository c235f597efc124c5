import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

/**
 * Where reading of one append-only file stopped, like `tail -F` keeps it: the file's inode
 * (a string, because inode numbers can exceed 2^53) and the byte offset just past the last
 * complete line handed out. Stored in the same transaction as whatever was derived from
 * the lines, so a restart resumes with no gap and no duplicate.
 * An empty inode means "no file seen yet"; the first file found is then read from 0 with no reset.
 */
export type LogCursor = { inode: string; offset: number };

/**
 * One complete line (without its "\n"); `offset` is where it starts in the file, the log event id.
 * `text` is at most `MAX_LINE_BYTES` of UTF-8 (see `boundLine`): the file keeps every byte, a
 * reader never gets more than that of one line.
 */
export type LogLine = { offset: number; text: string };

export type ReadResult = {
  lines: LogLine[];
  cursor: LogCursor;
  /** The cursor did not simply move forward: the file shrank, or a new file took the path. */
  reset?: "truncated" | "rotated";
  /**
   * The incomplete last line (text after the last "\n" up to end of file), when this read reached
   * the end of the file. Not yet a log line and the cursor stays before it, but its last "\r"
   * segment is the live tqdm bar a trainer redraws between newlines. Absent when the read stopped
   * before the end of the file because of `maxBytes`: there is more to read at once.
   */
  partial?: string;
};

export const DEFAULT_MAX_BYTES = 1024 * 1024;

/**
 * The most bytes of one line a reader gets (16 KiB: a screenful of text, far more than any
 * sensible log line, and small enough that a page or a subscription never carries megabytes for
 * one line). A longer line is shortened by `boundLine` with a visible "… N bytes cut" marker.
 */
export const MAX_LINE_BYTES = 16 * 1024;

/**
 * A line longer than this is handed out in pieces of at most this size (the last one ends the
 * line), whatever window the reader uses: piece boundaries depend only on the file's
 * bytes, so every reader (the monitor, a subscription catching up, `studio task logs -f`) cuts a
 * long line at the same offsets, and an event id stays exact. A 320 KB tqdm bar is one line.
 */
export const LONG_LINE_PIECE_BYTES = 1024 * 1024;

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/**
 * Reads the complete lines after `cursor` (at most `maxBytes` of file per call, so a fast trainer
 * is read in chunks; a window that holds no complete line grows to `LONG_LINE_PIECE_BYTES`). A
 * partial last line stays for the next call. A line longer than `LONG_LINE_PIECE_BYTES` is handed
 * out in pieces of at most that size, each cut after its last "\r" when it has one, else on a
 * UTF-8 character boundary, so the reader always advances. Every line's text is bounded by
 * `boundLine`.
 *
 * Rotation (the path now names another inode): pass `previousFile`, a handle opened on the file
 * the cursor points into, to finish reading it first; the reset "rotated" comes with the call that
 * drains it (its unterminated tail, which can no longer grow, is handed out as a last line) and
 * the returned cursor is at 0 of the new file. Without that handle the rest of the old file is
 * lost and the new file is read from 0 at once.
 *
 * Truncation is seen as size below the cursor; a file truncated and rewritten past the cursor
 * between two reads looks like appended output (`tail -F` has the same blind spot).
 */
export async function readNewLines(
  path: string,
  cursor: LogCursor | null,
  maxBytes: number = DEFAULT_MAX_BYTES,
  previousFile?: FileHandle,
): Promise<ReadResult> {
  const start = cursor ?? { inode: "", offset: 0 };
  const file = await openIfExists(path);
  if (!file) return { lines: [], cursor: start };
  try {
    const stats = await file.stat({ bigint: true });
    const inode = String(stats.ino);
    const size = Number(stats.size);
    if (start.inode === "") return await readChunk(file, inode, 0, size, maxBytes);
    if (start.inode !== inode) {
      if (previousFile) {
        const drained = await drainPrevious(previousFile, start, maxBytes, inode);
        if (drained) return drained;
      }
      return { ...(await readChunk(file, inode, 0, size, maxBytes)), reset: "rotated" };
    }
    if (size < start.offset) {
      return { ...(await readChunk(file, inode, 0, size, maxBytes)), reset: "truncated" };
    }
    return await readChunk(file, inode, start.offset, size, maxBytes);
  } finally {
    await file.close();
  }
}

/**
 * `readNewLines` for a file the caller keeps open, followed by descriptor rather than by name
 * (`tail -f`): a trainer's output keeps going to the inode it opened even after training.log is
 * deleted or replaced, and this keeps reading it. A handle on another inode than the cursor's is
 * read from 0 with the reset "rotated"; a file shorter than the cursor, from 0 with "truncated".
 */
export async function readOpenFile(
  file: FileHandle,
  cursor: LogCursor | null,
  maxBytes: number = DEFAULT_MAX_BYTES,
): Promise<ReadResult> {
  const stats = await file.stat({ bigint: true });
  const inode = String(stats.ino);
  const size = Number(stats.size);
  const start = cursor ?? { inode: "", offset: 0 };
  if (start.inode === "") return readChunk(file, inode, 0, size, maxBytes);
  if (start.inode !== inode) {
    return { ...(await readChunk(file, inode, 0, size, maxBytes)), reset: "rotated" };
  }
  if (size < start.offset) {
    return { ...(await readChunk(file, inode, 0, size, maxBytes)), reset: "truncated" };
  }
  return readChunk(file, inode, start.offset, size, maxBytes);
}

/**
 * `readOpenFile` on a descriptor, synchronously: the monitor's reads of a trainer's output are
 * small, from the page cache, and many a second, and a synchronous read costs a few system calls
 * where an asynchronous one costs a trip through the thread pool and several promises each.
 */
export function readOpenFileSync(
  fd: number,
  cursor: LogCursor | null,
  maxBytes: number = DEFAULT_MAX_BYTES,
): ReadResult {
  const stats = fstatSync(fd, { bigint: true });
  const inode = String(stats.ino);
  const size = Number(stats.size);
  const start = cursor ?? { inode: "", offset: 0 };
  if (start.inode === "") return readChunkSync(fd, inode, 0, size, maxBytes);
  if (start.inode !== inode) {
    return { ...readChunkSync(fd, inode, 0, size, maxBytes), reset: "rotated" };
  }
  if (size < start.offset) {
    return { ...readChunkSync(fd, inode, 0, size, maxBytes), reset: "truncated" };
  }
  return readChunkSync(fd, inode, start.offset, size, maxBytes);
}

/** `readNewLines` without `previousFile`, synchronously (see `readOpenFileSync`). */
export function readNewLinesSync(
  path: string,
  cursor: LogCursor | null,
  maxBytes: number = DEFAULT_MAX_BYTES,
): ReadResult {
  const fd = openIfExistsSync(path);
  if (fd === null) return { lines: [], cursor: cursor ?? { inode: "", offset: 0 } };
  try {
    return readOpenFileSync(fd, cursor, maxBytes);
  } finally {
    closeSync(fd);
  }
}

/** A descriptor open for reading on `path`, or null when there is no such file. */
export function openIfExistsSync(path: string): number | null {
  try {
    return openSync(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** What a terminal shows of a line a program redrew with "\r" (tqdm): the text after the last "\r". */
export function lastSegment(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === CARRIAGE_RETURN) end--;
  return text.slice(text.lastIndexOf("\r", end - 1) + 1, end);
}

/**
 * Up to `maxLines` lines that start before `beforeOffset` (a line's offset or a cursor offset),
 * in file order, for paging backwards through older output: the same lines, with the same
 * offsets, that `readNewLines` hands out (pieces of a long line included; an unfinished last line
 * is not one). `reachedStart` is true when the first returned line is the file's first line (or
 * the file is empty or missing). Looks back at most `maxBytes` for line starts, so a page can hold
 * fewer lines; a window with no line start in it (inside a line longer than the window) is
 * searched further back, up to `MAX_LOOK_BACK_BYTES`, beyond which a line cannot be paged to.
 */
export async function readLinesBefore(
  path: string,
  beforeOffset: number,
  maxLines: number,
  maxBytes: number = DEFAULT_MAX_BYTES,
): Promise<{ lines: LogLine[]; reachedStart: boolean }> {
  const file = await openIfExists(path);
  if (!file) return { lines: [], reachedStart: true };
  try {
    const stats = await file.stat({ bigint: true });
    const size = Number(stats.size);
    const end = Math.min(beforeOffset, size);
    const from = Math.max(0, end - maxBytes);
    const buffer = await readAt(file, from, end - from);
    // Where to read forward from: after the (maxLines + 1)-th "\n" back from `end`, or the
    // earliest one in the window (a window that starts inside the file may start mid-line).
    let start = from === 0 ? 0 : -1;
    let newline = buffer.length;
    for (let seen = 0; seen <= maxLines; seen++) {
      newline = newline === 0 ? -1 : buffer.lastIndexOf(NEWLINE, newline - 1);
      if (newline < 0) {
        if (from === 0) start = 0;
        break;
      }
      start = from + newline + 1;
    }
    // No line starts in the window: the line that ends there (or goes on past it) is longer.
    if ((start < 0 || start >= end) && end > 0) start = await lineStartBefore(file, end - 1);
    if (start < 0) return { lines: [], reachedStart: false };
    const lines = await linesBetween(file, String(stats.ino), start, end, size, maxLines);
    const reachedStart = lines.length > 0 ? lines[0]!.offset === 0 : end === 0;
    return { lines, reachedStart };
  } finally {
    await file.close();
  }
}

/** How far back `readLinesBefore` looks for the start of one long line. */
export const MAX_LOOK_BACK_BYTES = 64 * 1024 * 1024;

/** Where the line holding byte `at - 1` starts (after the last "\n" before `at`), looking back at most MAX_LOOK_BACK_BYTES; -1 past that. */
async function lineStartBefore(file: FileHandle, at: number): Promise<number> {
  const limit = Math.max(0, at - MAX_LOOK_BACK_BYTES);
  for (let end = at; end > limit; ) {
    const from = Math.max(limit, end - DEFAULT_MAX_BYTES);
    const newline = (await readAt(file, from, end - from)).lastIndexOf(NEWLINE);
    if (newline >= 0) return from + newline + 1;
    end = from;
  }
  return limit === 0 ? 0 : -1;
}

/** The last `maxLines` of the lines `readNewLines` hands out from line start `start` that start before `end`. */
async function linesBetween(
  file: FileHandle,
  inode: string,
  start: number,
  end: number,
  size: number,
  maxLines: number,
): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for (let offset = start; offset < end; ) {
    const read = await readChunk(file, inode, offset, size, DEFAULT_MAX_BYTES);
    for (const line of read.lines) if (line.offset < end) lines.push(line);
    if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
    if (read.cursor.offset <= offset) break; // only an unfinished line is left
    offset = read.cursor.offset;
  }
  return lines;
}

export async function openIfExists(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

async function drainPrevious(
  previousFile: FileHandle,
  cursor: LogCursor,
  maxBytes: number,
  newInode: string,
): Promise<ReadResult | null> {
  const stats = await previousFile.stat({ bigint: true });
  if (String(stats.ino) !== cursor.inode) return null;
  const size = Number(stats.size);
  const result = await readChunk(previousFile, cursor.inode, cursor.offset, size, maxBytes);
  // No `partial` means this read stopped before the end of the old file: more of it to come.
  if (result.partial === undefined) return result;
  const lines = [...result.lines];
  if (result.partial !== undefined && result.partial !== "") {
    lines.push({ offset: result.cursor.offset, text: result.partial });
  }
  return { lines, cursor: { inode: newInode, offset: 0 }, reset: "rotated" };
}

async function readChunk(
  file: FileHandle,
  inode: string,
  offset: number,
  size: number,
  maxBytes: number,
): Promise<ReadResult> {
  const length = Math.min(maxBytes, size - offset);
  if (length <= 0) return { lines: [], cursor: { inode, offset }, partial: "" };
  let buffer = await readAt(file, offset, length);
  if (needsWiderWindow(buffer, offset, size)) {
    buffer = await readAt(file, offset, Math.min(LONG_LINE_PIECE_BYTES + 1, size - offset));
  }
  return linesOf(buffer, inode, offset, size);
}

/** `readChunk` on a descriptor, synchronously. */
function readChunkSync(
  fd: number,
  inode: string,
  offset: number,
  size: number,
  maxBytes: number,
): ReadResult {
  const length = Math.min(maxBytes, size - offset);
  if (length <= 0) return { lines: [], cursor: { inode, offset }, partial: "" };
  let buffer = readAtSync(fd, offset, length);
  if (needsWiderWindow(buffer, offset, size)) {
    buffer = readAtSync(fd, offset, Math.min(LONG_LINE_PIECE_BYTES + 1, size - offset));
  }
  return linesOf(buffer, inode, offset, size);
}

/** No complete line in the window, and more file after it: look far enough to cut a piece. */
function needsWiderWindow(buffer: Buffer, offset: number, size: number): boolean {
  return (
    buffer.indexOf(NEWLINE) < 0 &&
    offset + buffer.length < size &&
    buffer.length <= LONG_LINE_PIECE_BYTES
  );
}

/** The lines of `buffer`, read at `offset` of a file of `size` bytes (see `readNewLines`). */
function linesOf(buffer: Buffer, inode: string, offset: number, size: number): ReadResult {
  const firstNewline = buffer.indexOf(NEWLINE);
  const reachedEnd = offset + buffer.length >= size;
  const lines: LogLine[] = [];
  let lineStart = 0;
  for (let i = firstNewline; i >= 0; i = buffer.indexOf(NEWLINE, lineStart)) {
    lineStart = pushPieces(lines, buffer, offset, lineStart, i);
    lines.push({ offset: offset + lineStart, text: boundLine(buffer.subarray(lineStart, i)) });
    lineStart = i + 1;
  }
  // The rest has no "\n": pieces of it if it is that long, so reading never stalls on one line.
  lineStart = pushPieces(lines, buffer, offset, lineStart, buffer.length);
  if (reachedEnd) {
    return {
      lines,
      cursor: { inode, offset: offset + lineStart },
      partial: boundLine(buffer.subarray(lineStart)),
    };
  }
  return { lines, cursor: { inode, offset: offset + lineStart } };
}

/**
 * Pushes the pieces of a line that runs from `start` to at least `end` in `buffer` (which starts
 * at file offset `offset`), for as long as more than `LONG_LINE_PIECE_BYTES` of it is left, and
 * returns where the rest (never empty when pieces were cut) starts. Each cut depends only on the
 * piece's own bytes.
 */
function pushPieces(
  lines: LogLine[],
  buffer: Buffer,
  offset: number,
  start: number,
  end: number,
): number {
  let from = start;
  while (end - from > LONG_LINE_PIECE_BYTES) {
    const piece = buffer.subarray(from, from + LONG_LINE_PIECE_BYTES);
    const cut = pieceEnd(piece);
    lines.push({ offset: offset + from, text: boundLine(piece.subarray(0, cut)) });
    from += cut;
  }
  return from;
}

/**
 * A line's bytes as text of at most `MAX_LINE_BYTES` bytes of UTF-8. A shorter line is decoded as
 * it is. A longer line that a program redrew with "\r" (a tqdm bar) keeps its last frames, as many
 * whole "\r" segments as fit, after a "… N bytes cut\r" marker (a terminal would have overwritten
 * what is cut; `lastSegment` still finds the last frame). Any other long line keeps its start and
 * its end around a " … N bytes cut … " marker. Cuts fall on UTF-8 character boundaries.
 */
export function boundLine(bytes: Buffer): string {
  if (bytes.length <= MAX_LINE_BYTES) return bytes.toString("utf8");
  const budget = MAX_LINE_BYTES - 64; // room for the marker
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === CARRIAGE_RETURN) end--;
  const lastReturn = end > 0 ? bytes.lastIndexOf(CARRIAGE_RETURN, end - 1) : -1;
  if (lastReturn >= 0 && end - lastReturn - 1 <= budget) {
    // The first "\r" that leaves at most `budget` bytes after it starts the kept frames.
    const keepFrom = bytes.indexOf(CARRIAGE_RETURN, Math.max(0, end - budget - 1)) + 1;
    const kept = bytes.subarray(keepFrom, end);
    return `… ${bytes.length - kept.length} bytes cut\r${kept.toString("utf8")}`;
  }
  const headEnd = charStart(bytes, Math.floor((budget * 3) / 4));
  const tailStart = charStart(bytes, bytes.length - (budget - headEnd));
  const cut = tailStart - headEnd;
  return `${bytes.toString("utf8", 0, headEnd)} … ${cut} bytes cut … ${bytes.toString("utf8", tailStart)}`;
}

/** `at`, moved back to the start of the UTF-8 character it falls in (at most 3 bytes back). */
function charStart(bytes: Buffer, at: number): number {
  let i = at;
  while (i > 0 && i > at - 3 && i < bytes.length && (bytes[i]! & 0xc0) === 0x80) i--;
  return i;
}

/** Where to cut an over-long line: after its last "\r", else before an incomplete UTF-8 character. */
function pieceEnd(buffer: Buffer): number {
  const lastReturn = buffer.lastIndexOf(CARRIAGE_RETURN);
  if (lastReturn > 0) return lastReturn + 1;
  let cut = buffer.length;
  // Step back over continuation bytes (10xxxxxx) to the lead byte of the last character, and
  // cut before it unless the character is complete.
  let lead = cut - 1;
  while (lead > 0 && lead > cut - 4 && (buffer[lead]! & 0xc0) === 0x80) lead--;
  const byte = buffer[lead]!;
  const width = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
  if (lead + width > cut) cut = lead;
  return cut > 0 ? cut : buffer.length;
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

function readAtSync(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const bytesRead = readSync(fd, buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}
