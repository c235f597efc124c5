import { appendFile, mkdtemp, open, rename, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  boundLine,
  DEFAULT_MAX_BYTES,
  LONG_LINE_PIECE_BYTES,
  type LogCursor,
  type LogLine,
  lastSegment,
  MAX_LINE_BYTES,
  readLinesBefore,
  readNewLines,
  readOpenFile,
} from "../../src/server/logs/log-cursor";

let dir: string;
let log: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "log-cursor-"));
  log = join(dir, "training.log");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Reads until nothing new is left, the way the monitor loops. */
async function readAll(cursor: LogCursor | null, maxBytes?: number) {
  const lines: LogLine[] = [];
  let current = cursor;
  for (;;) {
    const result = await readNewLines(log, current, maxBytes);
    lines.push(...result.lines);
    const moved = current === null || result.cursor.offset !== current.offset;
    current = result.cursor;
    if (!moved && result.lines.length === 0) return { lines, cursor: current };
  }
}

describe("readNewLines", () => {
  it("returns nothing and an empty-inode cursor while the file does not exist", async () => {
    const result = await readNewLines(log, null);
    expect(result).toEqual({ lines: [], cursor: { inode: "", offset: 0 } });
    await writeFile(log, "first\n");
    const next = await readNewLines(log, result.cursor);
    expect(next.lines).toEqual([{ offset: 0, text: "first" }]);
    expect(next.reset).toBeUndefined();
  });

  it("hands out appended lines once each, with their byte offsets", async () => {
    await writeFile(log, "one\ntwo\n");
    const first = await readNewLines(log, null);
    expect(first.lines).toEqual([
      { offset: 0, text: "one" },
      { offset: 4, text: "two" },
    ]);
    expect(first.cursor.offset).toBe(8);
    expect((await readNewLines(log, first.cursor)).lines).toEqual([]);
    await appendFile(log, "three\n");
    const second = await readNewLines(log, first.cursor);
    expect(second.lines).toEqual([{ offset: 8, text: "three" }]);
    expect(second.cursor).toEqual({ inode: first.cursor.inode, offset: 14 });
  });

  it("keeps a partial last line until its newline arrives", async () => {
    await writeFile(log, "done\nhalf");
    const first = await readNewLines(log, null);
    expect(first.lines).toEqual([{ offset: 0, text: "done" }]);
    expect(first.partial).toBe("half");
    expect(first.cursor.offset).toBe(5);
    await appendFile(log, " more");
    const second = await readNewLines(log, first.cursor);
    expect(second.lines).toEqual([]);
    expect(second.partial).toBe("half more");
    await appendFile(log, "\n");
    const third = await readNewLines(log, second.cursor);
    expect(third.lines).toEqual([{ offset: 5, text: "half more" }]);
    expect(third.partial).toBe("");
  });

  it("reads a large file in bounded chunks without losing or repeating a line", async () => {
    const expected = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${"x".repeat(i % 50)}`);
    await writeFile(log, `${expected.join("\n")}\n`);
    let calls = 0;
    let cursor: LogCursor | null = null;
    const seen: string[] = [];
    for (;;) {
      const result = await readNewLines(log, cursor, 64 * 1024);
      calls++;
      seen.push(...result.lines.map((l) => l.text));
      if (result.partial !== undefined) break;
      cursor = result.cursor;
    }
    expect(seen).toEqual(expected);
    expect(calls).toBeGreaterThan(10);
  });

  it("never splits a multibyte character at a chunk boundary and keeps offsets in bytes", async () => {
    // "█" is 3 bytes in UTF-8; a 7-byte window ends in the middle of one in every position.
    const text = ["█████", "é€😀", "plain"];
    await writeFile(log, `${text.join("\n")}\n`);
    const { lines } = await readAll(null, 7);
    expect(lines.map((l) => l.text).join("")).toBe(text.join(""));
    expect(lines.every((l) => !l.text.includes("\uFFFD"))).toBe(true);
    const whole = await readAll(null);
    expect(whole.lines).toEqual([
      { offset: 0, text: "█████" },
      { offset: 16, text: "é€😀" },
      { offset: 26, text: "plain" },
    ]);
  });

  it("replaces invalid UTF-8 instead of failing", async () => {
    await writeFile(log, Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a, 0xc3, 0x0a]));
    const { lines } = await readNewLines(log, null);
    expect(lines).toEqual([
      { offset: 0, text: "a\uFFFD\uFFFDb" },
      { offset: 5, text: "\uFFFD" },
    ]);
  });

  it("reads a line longer than the window whole, and one longer than a piece in pieces", async () => {
    const bars = Array.from({ length: 40 }, (_, i) => `\r${i}/40 bar`).join("");
    await writeFile(log, `${bars}\nnext\n`);
    const small = await readAll(null, 64);
    expect(small.lines).toEqual([
      { offset: 0, text: bars },
      { offset: Buffer.byteLength(bars) + 1, text: "next" },
    ]);

    // 2.5 pieces of bar frames, then "done": pieces end after a "\r", at the same offsets
    // whatever window the reader uses, so an event id means the same to every reader.
    const frame = (i: number) =>
      `\r${String(i).padStart(7, "0")}/9999999 [bar ${"#".repeat(i % 50)}]`;
    const frames: string[] = [];
    let bytes = 0;
    for (let i = 0; bytes < 2.5 * LONG_LINE_PIECE_BYTES; i++) {
      frames.push(frame(i));
      bytes += Buffer.byteLength(frames.at(-1)!);
    }
    await writeFile(log, `${frames.join("")}\ndone\n`);
    const offsetsBy = async (window: number) => (await readAll(null, window)).lines;
    const byDefault = await offsetsBy(DEFAULT_MAX_BYTES);
    expect(byDefault.map((l) => l.offset)).toEqual((await offsetsBy(4096)).map((l) => l.offset));
    expect(byDefault.map((l) => l.offset)).toEqual(
      (await offsetsBy(3 * LONG_LINE_PIECE_BYTES)).map((l) => l.offset),
    );
    expect(byDefault).toHaveLength(4);
    expect(byDefault.at(-1)).toEqual({ offset: bytes + 1, text: "done" });
    for (const piece of byDefault.slice(0, -1)) {
      expect(Buffer.byteLength(piece.text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
      expect(piece.text).toMatch(/^… \d+ bytes cut\r/);
    }
    // The last piece ends with the bar's last frame, as a terminal would show it.
    expect(lastSegment(byDefault[2]!.text)).toBe(frame(frames.length - 1).slice(1));
    for (let i = 1; i < 3; i++) {
      const offset = byDefault[i]!.offset;
      expect(offset - byDefault[i - 1]!.offset).toBeLessThanOrEqual(LONG_LINE_PIECE_BYTES);
      // Cut right after a "\r": the piece starts with a whole frame.
      const head = Buffer.alloc(1);
      const file = await open(log, "r");
      await file.read(head, 0, 1, offset - 1);
      await file.close();
      expect(head.toString()).toBe("\r");
    }
  });

  it("cuts a line at the piece size the same way whether its newline is in view or not", async () => {
    for (const length of [
      LONG_LINE_PIECE_BYTES - 1,
      LONG_LINE_PIECE_BYTES,
      LONG_LINE_PIECE_BYTES + 1,
      2 * LONG_LINE_PIECE_BYTES,
    ]) {
      await writeFile(log, `${"z".repeat(length)}\nnext\n`);
      const units = (await readAll(null)).lines.map((l) => l.offset);
      expect((await readAll(null, 100)).lines.map((l) => l.offset)).toEqual(units);
      expect((await readAll(null, 4 * LONG_LINE_PIECE_BYTES)).lines.map((l) => l.offset)).toEqual(
        units,
      );
      // Pieces only for a line longer than a piece, and never an empty remainder.
      expect(units).toHaveLength(Math.ceil(length / LONG_LINE_PIECE_BYTES) + 1);
      expect(units.at(-1)).toBe(length + 1);
      // Growing in place (no newline yet) hands out the same pieces as the finished line.
      await writeFile(log, "z".repeat(length));
      const growing = await readAll(null);
      expect(growing.lines.map((l) => l.offset)).toEqual(units.slice(0, -2));
    }
  });

  it("bounds the incomplete last line it reports as partial", async () => {
    await writeFile(log, `first\n${"\r12%|bar| 12/100 [00:01<00:09, 9.0it/s]".repeat(10_000)}`);
    const read = await readNewLines(log, null);
    expect(read.lines).toEqual([{ offset: 0, text: "first" }]);
    expect(Buffer.byteLength(read.partial!)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(lastSegment(read.partial!)).toBe("12%|bar| 12/100 [00:01<00:09, 9.0it/s]");
  });

  it("restarts at 0 when the file was truncated", async () => {
    await writeFile(log, "old line one\nold line two\n");
    const first = await readNewLines(log, null);
    await truncate(log, 0);
    await appendFile(log, "new\n");
    const second = await readNewLines(log, first.cursor);
    expect(second.reset).toBe("truncated");
    expect(second.lines).toEqual([{ offset: 0, text: "new" }]);
    expect(second.cursor).toEqual({ inode: first.cursor.inode, offset: 4 });
  });

  it("detects rotation and starts the new file at 0", async () => {
    await writeFile(log, "a\n");
    const first = await readNewLines(log, null);
    await appendFile(log, "lost\n");
    await rename(log, `${log}.1`);
    await writeFile(log, "fresh\n");
    const second = await readNewLines(log, first.cursor);
    expect(second.reset).toBe("rotated");
    expect(second.lines).toEqual([{ offset: 0, text: "fresh" }]);
    expect(second.cursor.inode).not.toBe(first.cursor.inode);
  });

  it("finishes the rotated file through a kept handle, then switches", async () => {
    await writeFile(log, "a\n");
    const previous = await open(log, "r");
    try {
      const first = await readNewLines(log, null);
      await appendFile(log, "b\nc\nunterminated");
      await rename(log, `${log}.1`);
      await writeFile(log, "fresh\n");

      const draining = await readNewLines(log, first.cursor, 2, previous);
      expect(draining.reset).toBeUndefined();
      expect(draining.lines).toEqual([{ offset: 2, text: "b" }]);
      expect(draining.cursor).toEqual({ inode: first.cursor.inode, offset: 4 });

      const rest = await readNewLines(log, draining.cursor, 1024, previous);
      expect(rest.reset).toBe("rotated");
      expect(rest.lines).toEqual([
        { offset: 4, text: "c" },
        { offset: 6, text: "unterminated" },
      ]);
      const fresh = await readNewLines(log, rest.cursor, 1024, previous);
      expect(fresh.reset).toBeUndefined();
      expect(fresh.lines).toEqual([{ offset: 0, text: "fresh" }]);
    } finally {
      await previous.close();
    }
  });
});

describe("lastSegment", () => {
  it("shows what a terminal would after carriage-return redraws", () => {
    expect(lastSegment(" 10%|█ | 1/10\r 20%|██ | 2/10")).toBe(" 20%|██ | 2/10");
    expect(lastSegment("plain")).toBe("plain");
    expect(lastSegment("windows line\r")).toBe("windows line");
    expect(lastSegment("\rbar\r    \r{'loss': 1.0}")).toBe("{'loss': 1.0}");
    expect(lastSegment("")).toBe("");
  });
});

describe("readLinesBefore", () => {
  it("pages backwards through complete lines with their offsets", async () => {
    const texts = Array.from({ length: 100 }, (_, i) => `line ${i}`);
    await writeFile(log, `${texts.join("\n")}\npartial`);
    const { lines: all } = await readNewLines(log, null);
    const tailStart = all[90]!.offset;
    const page = await readLinesBefore(log, tailStart, 30);
    expect(page.lines).toEqual(all.slice(60, 90));
    expect(page.reachedStart).toBe(false);

    const collected: LogLine[] = [];
    let before = Number.MAX_SAFE_INTEGER;
    for (;;) {
      const older = await readLinesBefore(log, before, 7, 50);
      collected.unshift(...older.lines);
      if (older.reachedStart) break;
      before = older.lines[0]!.offset;
    }
    expect(collected).toEqual(all);
  });

  it("pages back over lines longer than the window, as the pieces readNewLines hands out", async () => {
    const long = (n: number, char: string) => char.repeat(n);
    await writeFile(
      log,
      `first\n${long(3.5 * LONG_LINE_PIECE_BYTES, "a")}\nmiddle\n${long(2 * LONG_LINE_PIECE_BYTES + 7, "b")}\nlast\n${long(LONG_LINE_PIECE_BYTES + 3, "c")}`,
    );
    const { lines: all } = await readAll(null);
    expect(all.map((l) => l.text.slice(0, 6))).toEqual([
      "first",
      "aaaaaa",
      "aaaaaa",
      "aaaaaa",
      "aaaaaa",
      "middle",
      "bbbbbb",
      "bbbbbb",
      "bbbbbb",
      "last",
      "cccccc",
    ]);
    for (const [maxLines, maxBytes] of [
      [3, undefined],
      [1, 50],
      [100, 4096],
    ] as const) {
      const collected: LogLine[] = [];
      let before = Number.MAX_SAFE_INTEGER;
      for (let pages = 0; pages < 50; pages++) {
        const older = await readLinesBefore(log, before, maxLines, maxBytes);
        collected.unshift(...older.lines);
        if (older.reachedStart) break;
        before = older.lines[0]!.offset;
      }
      expect(collected).toEqual(all);
    }
  });

  it("handles empty and missing files and an offset at the start", async () => {
    expect(await readLinesBefore(log, 100, 10)).toEqual({ lines: [], reachedStart: true });
    await writeFile(log, "");
    expect(await readLinesBefore(log, 100, 10)).toEqual({ lines: [], reachedStart: true });
    await writeFile(log, "x\ny\n");
    expect(await readLinesBefore(log, 0, 10)).toEqual({ lines: [], reachedStart: true });
    expect(await readLinesBefore(log, 2, 10)).toEqual({
      lines: [{ offset: 0, text: "x" }],
      reachedStart: true,
    });
  });
});

describe("boundLine", () => {
  const bytesOf = (text: string) => Buffer.byteLength(text);
  const cutOf = (text: string) => Number(/… (\d+) bytes cut/.exec(text)?.[1]);

  it("leaves a line of up to MAX_LINE_BYTES as it is", () => {
    for (const length of [0, 1, MAX_LINE_BYTES - 1, MAX_LINE_BYTES]) {
      const text = "a".repeat(length);
      expect(boundLine(Buffer.from(text))).toBe(text);
    }
  });

  it("keeps the last frames of a long \\r bar after a marker counting the cut bytes", () => {
    const frames = Array.from({ length: 4000 }, (_, i) => `\r${i}/4000 ${"█".repeat(20)}`);
    for (const ending of ["", "\r", "\r\r", "\rdone"]) {
      const raw = Buffer.from(frames.join("") + ending);
      const text = boundLine(raw);
      expect(bytesOf(text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
      expect(text.startsWith("… ")).toBe(true);
      const kept = text.slice(text.indexOf("\r") + 1);
      expect(cutOf(text) + bytesOf(kept)).toBe(raw.length);
      expect(raw.toString().replace(/\r+$/, "").endsWith(kept)).toBe(true);
      expect(kept).toContain(`3999/4000 ${"█".repeat(20)}`);
      expect(lastSegment(text)).toBe(ending === "\rdone" ? "done" : frames[3999]!.slice(1));
      expect(text).not.toContain("\uFFFD");
    }
  });

  it("keeps the start and the end of any other long line, on character boundaries", () => {
    // 1-, 2-, 3- and 4-byte characters, each shifted so every cut point falls inside one.
    for (const char of ["x", "é", "€", "😀"]) {
      for (let shift = 0; shift < 4; shift++) {
        for (const length of [MAX_LINE_BYTES + 1, MAX_LINE_BYTES * 3, 10 * 1024 * 1024]) {
          const raw = Buffer.from(
            "s".repeat(shift) + char.repeat(Math.ceil(length / bytesOf(char))),
          );
          const text = boundLine(raw);
          expect(bytesOf(text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
          expect(text).not.toContain("\uFFFD");
          const [head, tail] = text.split(/ … \d+ bytes cut … /);
          expect(bytesOf(head!) + cutOf(text) + bytesOf(tail!)).toBe(raw.length);
          expect(raw.toString().startsWith(head!)).toBe(true);
          expect(raw.toString().endsWith(tail!)).toBe(true);
        }
      }
    }
  });

  it("treats a \\r line whose last frame alone is too long like any long line", () => {
    const raw = Buffer.from(`\rshort\r${"y".repeat(MAX_LINE_BYTES * 2)}`);
    const text = boundLine(raw);
    expect(bytesOf(text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(text).toMatch(/^\rshort\ry+ … \d+ bytes cut … y+$/);
  });
});

describe("readOpenFile", () => {
  it("follows the open file after its path is deleted or replaced", async () => {
    await writeFile(log, "one\n");
    const file = await open(log, "r");
    const writer = await open(log, "a");
    try {
      const first = await readOpenFile(file, null);
      expect(first.lines).toEqual([{ offset: 0, text: "one" }]);
      await rm(log);
      await writer.write("two\n");
      const second = await readOpenFile(file, first.cursor);
      expect(second).toMatchObject({ lines: [{ offset: 4, text: "two" }], cursor: { offset: 8 } });
      expect(second.reset).toBeUndefined();
      await writeFile(log, "impostor\n");
      await writer.write("three\n");
      const third = await readOpenFile(file, second.cursor);
      expect(third.lines).toEqual([{ offset: 8, text: "three" }]);
    } finally {
      await file.close();
      await writer.close();
    }
  });

  it("starts over with a reset on truncation, and on a handle to another file than the cursor's", async () => {
    await writeFile(log, "old one\nold two\n");
    const file = await open(log, "r");
    try {
      const first = await readOpenFile(file, null);
      await truncate(log, 0);
      await appendFile(log, "new\n");
      const second = await readOpenFile(file, first.cursor);
      expect(second).toMatchObject({ reset: "truncated", lines: [{ offset: 0, text: "new" }] });
      const other = await readOpenFile(file, { inode: "1", offset: 4 });
      expect(other).toMatchObject({ reset: "rotated", lines: [{ offset: 0, text: "new" }] });
    } finally {
      await file.close();
    }
  });
});
