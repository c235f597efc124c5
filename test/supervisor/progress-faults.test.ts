import { appendFile, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { progressView } from "../../src/components/progress-view";
import { readProgressLine } from "../../src/server/supervisor/progress-state";
import { MAX_INT4 } from "../../src/trainers/protocol";
import { testDatabaseKinds } from "../helpers/databases";
import { MonitorHarness } from "./monitor-harness";

const ok = (event: Record<string, unknown>) => JSON.stringify(event);
const progress = (step: number, loss: number) =>
  ok({ event: "progress", epoch: step / 10, total_epochs: 1, step, total_steps: 10, loss });

/** Lines a trainer could write that must be skipped, each with the rule it breaks. */
const BAD_LINES: [string, RegExp][] = [
  [progress(MAX_INT4 + 1, 1), /step: Too big/],
  [progress(1.5, 1), /step: .*int/],
  [
    ok({ event: "progress", epoch: 0, total_epochs: 1, step: -1, total_steps: 10 }),
    /step: Too small/,
  ],
  [ok({ event: "eval", step: 3, eval_loss: "low" }), /eval_loss/],
  [ok({ event: "checkpoint", step: 3, path: "../../etc" }), /path: must not contain "\.\."/],
  [ok({ event: "checkpoint", step: 3, path: "/abs/ckpt" }), /path: must be relative/],
  [ok({ event: "checkpoint", step: 3, path: "c".repeat(1025) }), /path: Too big/],
  [ok({ event: "stopped", step: 3, reason: "r".repeat(5000) }), /reason: Too big/],
  [ok({ event: "started", total_epochs: 1, total_steps: 10, time: 1e300 }), /time: Too big/],
  [ok({ event: "progress", epoch: 1, total_epochs: 1, step: 3 }), /total_steps/],
  [ok({ event: "launched" }), /event/],
  ['{"event": "progress", "loss": NaN}', /not JSON/],
  ["CORRUPT{{{", /not JSON/],
  ["[1, 2]", /expected object/],
  [ok({ event: "warning", kind: "Disk Space", message: "m" }), /kind: lowercase/],
  [ok({ event: "warning", kind: "disk-space", message: "" }), /message: Too small/],
  [ok({ event: "warning", kind: "disk-space", message: "m".repeat(1025) }), /message: Too big/],
];

describe("progress.jsonl events against the protocol's ranges", () => {
  it("refuses each bad line with a short reason naming the field", () => {
    for (const [line, reason] of BAD_LINES) {
      const read = readProgressLine(line);
      expect(read && "problem" in read ? read.problem : read, line.slice(0, 80)).toMatch(reason);
      expect((read as { problem: string }).problem.length).toBeLessThanOrEqual(301);
    }
    expect(readProgressLine("   ")).toBeNull();
    expect(readProgressLine(progress(MAX_INT4, 1))).toHaveProperty("event");
    expect(
      readProgressLine(ok({ event: "checkpoint", step: 0, path: "checkpoints/step-0" })),
    ).toHaveProperty("event");
  });
});

describe("the page's count of skipped events", () => {
  it("reads progress.skippedEvents, 0 for rows stored before it existed", () => {
    expect(progressView({ step: 3, skippedEvents: 14 }, true, 0).skippedEvents).toBe(14);
    expect(progressView({ step: 3 }, true, 0).skippedEvents).toBe(0);
    expect(progressView({}, false, 0).skippedEvents).toBe(0);
  });
});

describe.each(testDatabaseKinds())("a bad progress event never stops the monitor (%s)", (kind) => {
  let h: MonitorHarness;
  beforeAll(async () => {
    h = await MonitorHarness.create(kind);
  });
  afterAll(() => h.dispose());

  it("skips, counts and reports bad events while good ones, metrics and log lines go on", async () => {
    const good = [1, 2, 3, 4].map((step) => progress(step, 5 - step));
    // The reproduction first: a step past int4, and a fractional step.
    await writeFile(
      h.progressFile,
      `${[good[0], ...BAD_LINES.map(([line]) => line), good[1]].join("\n")}\n`,
    );
    await writeFile(h.log, "line 1\nline 2\n");
    await h.monitor.tick();
    expect(h.errors).toEqual([]);
    expect(await h.progress()).toMatchObject({ step: 2, skippedEvents: BAD_LINES.length });
    expect(h.lines().map((l) => l.text)).toEqual(["line 1", "line 2"]);
    expect((await h.metrics()).map((m) => [m.step, m.kind, m.loss])).toEqual([
      [1, "train", 4],
      [2, "train", 3],
    ]);
    // The first three are reported one by one, then at 10; every report names the byte offset.
    const warnings = (await h.events()).filter((e) => e.type === "warning");
    expect(warnings.map((e) => e.data?.skipped)).toEqual([1, 2, 3, 10]);
    expect(warnings[0]!.message).toMatch(
      /^progress\.jsonl: skipped the line at byte \d+ \(step: Too big.*\); 1 skipped so far$/,
    );
    expect(warnings[0]!.data).toMatchObject({ offset: good[0]!.length + 1 });
    // Subscribers hear of each warning with the task's row.
    expect(h.updates.filter((u) => u.event?.type === "warning")).toHaveLength(4);

    await appendFile(h.progressFile, `${good[2]}\n${progress(MAX_INT4 + 5, 0)}\n${good[3]}\n`);
    await appendFile(h.log, "line 3\n");
    await h.monitor.tick();
    expect(h.errors).toEqual([]);
    expect(await h.progress()).toMatchObject({ step: 4, skippedEvents: BAD_LINES.length + 1 });
    expect(h.lines().map((l) => l.text)).toEqual(["line 1", "line 2", "line 3"]);
    expect((await h.metrics()).map((m) => m.step)).toEqual([1, 2, 3, 4]);
  });

  it("re-reads after a crash without storing a metric or showing a line twice", async () => {
    const seen = h.lines().length;
    // Plain lines only move the cursors, which are stored at most once a second: a crash right
    // after can leave the stored cursors behind. Pretend it left them at the very start.
    await appendFile(h.log, "line 4\n");
    await h.monitor.tick();
    await h.restart({ crash: true });
    h.monitor.target.logCursor = null;
    h.monitor.target.progressCursor = null;
    const before = await h.metrics();
    await h.monitor.tick();
    expect(h.errors).toEqual([]);
    expect(await h.metrics()).toEqual(before);
    // What a subscriber that had every line gets again is dropped by offset (onLog keeps the last).
    const last = h.lines()[seen]!.offset;
    const again = h.lines().slice(seen + 1);
    expect(again.length).toBeGreaterThan(0);
    expect(again.every((l) => l.offset <= last)).toBe(true);
  });

  it("stores the cursors when it drains, so a restart reads nothing twice", async () => {
    await appendFile(h.log, "line 5\n");
    await h.monitor.tick();
    await h.restart();
    const count = h.lines().length;
    const events = (await h.events()).length;
    await h.monitor.tick();
    expect(h.lines()).toHaveLength(count);
    expect(await h.events()).toHaveLength(events);
  });

  it("stores nothing for a tick that only sees the unfinished bar redrawn at the same step", async () => {
    await h.fresh(); // a task with no progress.jsonl: the log's bar is its progress
    const bar = (step: number) => `\r 50%|█████     | ${step}/10 [00:01<00:01,  2.00it/s]`;
    await appendFile(h.log, bar(5));
    await h.monitor.tick();
    expect((await h.progress()).step).toBe(5);
    const updates = h.updates.length;
    await appendFile(h.log, bar(5));
    await h.monitor.tick();
    await h.monitor.tick();
    expect(h.updates).toHaveLength(updates);
    await appendFile(h.log, `${bar(6)}\n`);
    await h.monitor.tick();
    expect(h.updates.length).toBeGreaterThan(updates);
    expect((await h.progress()).step).toBe(6);
    expect(h.errors).toEqual([]);
  });

  it("stores a trainer's warning as a task warning in its words, once across a restart", async () => {
    await h.fresh();
    const message = "this run will not fit on the task folder's disk: it needs about 12 MB more";
    await writeFile(
      h.progressFile,
      `${ok({ event: "warning", kind: "disk-space", message, step: 3 })}\n${progress(3, 2)}\n`,
    );
    await h.monitor.tick();
    const warnings = async () => (await h.events()).filter((e) => e.type === "warning");
    expect(await warnings()).toMatchObject([
      { attempt: 1, message, data: { source: "trainer", kind: "disk-space", step: 3 } },
    ]);
    expect(await h.progress()).toMatchObject({ step: 3, skippedEvents: 0 });
    expect(h.updates.filter((u) => u.event?.type === "warning")).toHaveLength(1);
    await h.restart({ crash: true });
    await h.monitor.tick();
    expect(await warnings()).toHaveLength(1);
    expect(h.errors).toEqual([]);
  });
});
