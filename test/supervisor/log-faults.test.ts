import { type FileHandle, open, rename, rm, truncate, writeFile } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { logWarnings } from "../../src/components/log-warnings";
import { lastSegment, MAX_LINE_BYTES } from "../../src/server/logs/log-cursor";
import { readLinesAfter } from "../../src/server/tasks/task-log";
import { testDatabaseKinds } from "../helpers/databases";
import { MonitorHarness } from "./monitor-harness";

const numbered = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");

describe.each(testDatabaseKinds())("training.log faults while an attempt runs (%s)", (kind) => {
  let h: MonitorHarness;
  /** The runner's side: training.log opened once for appending, as the runner does. */
  let runner: FileHandle;
  beforeAll(async () => {
    h = await MonitorHarness.create(kind);
  });
  afterAll(() => h.dispose());
  beforeEach(async () => {
    await h.fresh();
    runner = await open(h.log, "a");
  });
  afterEach(() => runner.close());
  const warnings = async () => (await h.events()).filter((e) => e.type === "warning");

  it("deleted: all 31 lines still reach subscribers, and an event names the byte offset", async () => {
    await runner.write(numbered(1, 10));
    await h.monitor.tick();
    const offset = Buffer.byteLength(numbered(1, 10));
    await rm(h.log);
    await runner.write(numbered(11, 31));
    await h.monitor.tick();
    await h.monitor.drain();
    expect(h.errors).toEqual([]);
    expect(h.lines().map((l) => l.text)).toEqual(numbered(1, 31).trim().split("\n"));
    const [warning, ...more] = await warnings();
    expect(more).toEqual([]);
    expect(warning!.data).toEqual({ file: "training.log", kind: "deleted", offset });
    expect(warning!.message).toBe(
      `training.log was deleted after byte ${offset} had been read; the trainer's output is still followed and shown live, but lines from there on are not in training.log`,
    );
    expect(h.updates.some((u) => u.event?.id === warning!.id)).toBe(true);
    // The page shows it above the log.
    expect(logWarnings(await h.events(), null)).toEqual([warning]);
  });

  it("replaced: the trainer's own output is followed, the impostor is not shown", async () => {
    await runner.write(numbered(1, 5));
    await h.monitor.tick();
    await writeFile(`${h.log}.new`, "not from the trainer\n");
    await rename(`${h.log}.new`, h.log);
    await runner.write(numbered(6, 8));
    await h.monitor.tick();
    expect(h.lines().map((l) => l.text)).toEqual(numbered(1, 8).trim().split("\n"));
    expect((await warnings()).map((w) => w.data)).toEqual([
      { file: "training.log", kind: "replaced", offset: Buffer.byteLength(numbered(1, 5)) },
    ]);
  });

  it("truncated: reported with the offset read so far, then shown again from the start", async () => {
    await runner.write(numbered(1, 21));
    await h.monitor.tick();
    const offset = Buffer.byteLength(numbered(1, 21));
    await truncate(h.log, 0);
    await runner.write(numbered(22, 24));
    await h.monitor.tick();
    expect(h.errors).toEqual([]);
    expect(h.published.at(-1)).toMatchObject({ reset: "truncated" });
    expect(h.published.at(-1)!.lines.map((l) => l.text)).toEqual(["line 22", "line 23", "line 24"]);
    const [warning] = await warnings();
    expect(warning!.data).toEqual({ file: "training.log", kind: "truncated", offset });
    expect(warning!.message).toMatch(
      /^training\.log was truncated \(it had been read up to byte \d+\)/,
    );
  });

  it("missing after a restart: reported once, also over further restarts", async () => {
    await runner.write(numbered(1, 3));
    await h.monitor.tick();
    await h.restart();
    await rm(h.log);
    await h.monitor.tick();
    await h.monitor.tick();
    await h.restart();
    await h.monitor.tick();
    expect((await warnings()).map((w) => w.data)).toEqual([
      { file: "training.log", kind: "missing", offset: Buffer.byteLength(numbered(1, 3)) },
    ]);
  });

  it("replaced while the studio was down: reported, and the new file read from its start", async () => {
    await runner.write(numbered(1, 4));
    await h.monitor.tick();
    await h.restart();
    await writeFile(`${h.log}.new`, "new 1\n");
    await rename(`${h.log}.new`, h.log);
    await h.monitor.tick();
    expect(h.published.at(-1)).toEqual({
      taskId: h.taskId,
      attempt: 1,
      lines: [{ offset: 0, text: "new 1" }],
      reset: "rotated",
    });
    expect((await warnings()).map((w) => w.data)).toEqual([
      { file: "training.log", kind: "replaced", offset: Buffer.byteLength(numbered(1, 4)) },
    ]);
  });

  it("a 320 KB \\r bar: the bar's last frame, bounded, then done; readers page past it", async () => {
    await runner.write("before\n");
    await h.monitor.tick();
    const frame = (i: number) =>
      `\r${String(i).padStart(4)}/4000 |${"#".repeat(i % 60).padEnd(60)}|`;
    for (let i = 0; i < 4000; i += 500) {
      await runner.write(Array.from({ length: 500 }, (_, j) => frame(i + j)).join(""));
      await h.monitor.tick();
    }
    // As `printf '\r%s' "$frame"` 4,000 times, then `echo done`: a terminal shows the last frame
    // with "done" after it, on one line.
    await runner.write("done\nafter\n");
    await h.monitor.tick();
    expect(h.errors).toEqual([]);
    const lines = h.lines();
    expect(lines.map((l) => lastSegment(l.text))).toEqual([
      "before",
      `${frame(3999).slice(1)}done`,
      "after",
    ]);
    expect(lines[1]!.text).toMatch(/^… \d+ bytes cut\r/);
    expect(Buffer.byteLength(lines[1]!.text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    // A subscriber catching up from any id gets the same lines, and the catch-up ends.
    expect(await readLinesAfter(h.log, null, 64 * 1024)).toEqual({
      lines: lines.slice(0, 1),
      more: true,
    });
    expect(await readLinesAfter(h.log, lines[0]!.offset, 64 * 1024)).toEqual({
      lines: lines.slice(1),
      more: false,
    });
    expect(await readLinesAfter(h.log, lines[1]!.offset, 64 * 1024)).toEqual({
      lines: lines.slice(2),
      more: false,
    });
  });

  it("a 10 MB line: bounded pieces, then the next line; catch-up reads end", async () => {
    const chunk = "x".repeat(1024 * 1024);
    for (let i = 0; i < 10; i++) await runner.write(chunk);
    await runner.write("\nafter\n");
    await h.monitor.tick();
    const lines = h.lines();
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(lines.at(-1)).toEqual({ offset: 10 * 1024 * 1024 + 1, text: "after" });
    for (const line of lines)
      expect(Buffer.byteLength(line.text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    // Paging from any id, as onLog's catch-up does, always advances and ends.
    let after: number | null = null;
    const paged: { offset: number; text: string }[] = [];
    for (let reads = 0; reads < 50; reads++) {
      const read = await readLinesAfter(h.log, after, 256 * 1024);
      paged.push(...read.lines);
      if (read.lines.length) after = read.lines.at(-1)!.offset;
      if (!read.more) break;
    }
    expect(paged).toEqual(lines);
  });
});

describe("logWarnings: what the page shows above the log", () => {
  const event = (id: number, attempt: number | null, type: string, data: unknown) => ({
    id,
    attempt,
    type,
    message: `m${id}`,
    data,
  });
  const log = { file: "training.log", kind: "deleted", offset: 5 };
  const events = [
    event(1, 1, "warning", log),
    event(2, 1, "warning", { file: "progress.jsonl", offset: 3 }),
    event(3, 2, "started", null),
    event(4, 2, "warning", { ...log, kind: "truncated" }),
    event(5, 2, "warning", null),
    event(6, null, "warning", log),
  ];

  it("keeps training.log warnings of the attempt shown, the newest by default", () => {
    expect(logWarnings(events, null).map((e) => e.id)).toEqual([4]);
    expect(logWarnings(events, 2).map((e) => e.id)).toEqual([4]);
    expect(logWarnings(events, 1).map((e) => e.id)).toEqual([1]);
    expect(logWarnings(events, 3)).toEqual([]);
    expect(logWarnings([], null)).toEqual([]);
  });
});
