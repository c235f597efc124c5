import { appendFile, mkdtemp, open, rename, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type LogCursor,
  type LogLine,
  lastSegment,
  readLinesBefore,
  readNewLines,
} from "../../src/server/supervisor/log-cursor";

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

  it("hands out a line longer than the window in pieces, cut after a carriage return", async () => {
    const bars = Array.from({ length: 40 }, (_, i) => `\r${i}/40 bar`).join("");
    await writeFile(log, `${bars}\n`);
    const { lines } = await readAll(null, 64);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.map((l) => l.text).join("")).toBe(bars);
    for (const piece of lines.slice(0, -1)) expect(piece.text.endsWith("\r")).toBe(true);
    for (let i = 1; i < lines.length; i++) {
      expect(lines[i]!.offset).toBe(lines[i - 1]!.offset + Buffer.byteLength(lines[i - 1]!.text));
    }
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
