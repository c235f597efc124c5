import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/server/logs/log-cursor";
import { lastSegment, MAX_LINE_BYTES } from "../../src/server/logs/log-cursor";
import { testDatabaseKinds } from "../helpers/databases";
import { followLog } from "../helpers/sse";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const FIXTURE = join(import.meta.dirname, "../fixtures/trainers/log-faults.mjs");
const frame = (i: number) =>
  `${String(i).padStart(4)}/4000 |${"#".repeat(Math.floor(i / 70)).padEnd(60)}|`;

/** Lines of task.onLog from `lastEventId` until `until` holds for one, then the stream is closed. */
async function linesUntil(
  studio: TestStudio,
  taskId: string,
  lastEventId: string | null,
  until: (line: LogLine) => boolean,
): Promise<LogLine[]> {
  const abort = new AbortController();
  const lines: LogLine[] = [];
  for await (const batch of followLog(
    `http://127.0.0.1:${studio.port}`,
    taskId,
    lastEventId,
    abort.signal,
  )) {
    lines.push(...batch.lines);
    if (batch.lines.some(until)) break;
  }
  abort.abort();
  return lines;
}

describe.each(testDatabaseKinds())("issue #10's log reproductions on a studio (%s)", (kind) => {
  let studio: TestStudio;
  let gates: string;
  beforeAll(async () => {
    studio = await TestStudio.create(kind, { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    await studio.start();
    gates = mkdtempSync(join(tmpdir(), "log-faults-"));
  });
  afterAll(async () => {
    await studio.dispose();
    rmSync(gates, { recursive: true, force: true });
  });

  const startTask = async (mode: string) => {
    const gateDir = mkdtempSync(join(gates, `${mode}-`));
    const task = await studio.client.task.create.mutate({
      name: mode,
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [process.execPath, FIXTURE, mode, gateDir],
    });
    await studio.client.task.start.mutate({ id: task.id });
    const wrote = (stage: number) =>
      waitFor(`stage ${stage} written`, () => existsSync(join(gateDir, `wrote-${stage}`)));
    const go = (stage: number) => writeFileSync(join(gateDir, `go-${stage}`), "");
    const completed = () =>
      waitFor("the task completed", async () => {
        const { task: t } = await studio.client.task.get.query({ id: task.id });
        return t.status === "completed";
      });
    return { id: task.id, wrote, go, completed };
  };

  it("a 320 KB \\r bar, then done: subscribers get the bar's last frame, bounded, then done", async () => {
    const task = await startTask("bar");
    await task.wrote(8);
    // One subscriber from the start; one that resumes after "before" while the bar has no
    // newline yet (its catch-up used to loop forever there, never yielding).
    const first = await linesUntil(studio, task.id, null, (l) => l.text === "before");
    const resumed = linesUntil(studio, task.id, String(first[0]!.offset), (l) =>
      l.text.endsWith("done"),
    );
    const fromStart = linesUntil(studio, task.id, null, (l) => l.text.endsWith("done"));
    task.go(9);
    const [afterBefore, all] = await Promise.all([resumed, fromStart]);
    await task.completed();

    expect(all.map((l) => lastSegment(l.text))).toEqual(["before", `${frame(3999)}done`]);
    expect(afterBefore).toEqual(all.slice(1));
    expect(all[1]!.text).toMatch(/^… \d+ bytes cut\r/);
    expect(Buffer.byteLength(all[1]!.text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect((await studio.client.task.logs.query({ id: task.id })).lines).toEqual(all);
  });

  it("a 10 MB line: bounded pieces, then the next line, live and from the file", async () => {
    const task = await startTask("big");
    await task.wrote(0);
    task.go(1);
    await task.wrote(1);
    task.go(2);
    const live = await linesUntil(studio, task.id, null, (l) => l.text === "after");
    await task.completed();
    expect(live[0]!.text).toBe("before");
    expect(live.at(-1)!.text).toBe("after");
    for (const line of live)
      expect(Buffer.byteLength(line.text)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(live.slice(1, -1).every((l) => / … \d+ bytes cut … /.test(l.text))).toBe(true);
    // The page's tail and its pages back (as it scrolls up) are the same lines.
    const shown: LogLine[] = [];
    let before: number | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const page = await studio.client.task.logs.query({ id: task.id, before, limit: 3 });
      shown.unshift(...page.lines);
      if (page.reachedStart) break;
      before = page.lines[0]!.offset;
    }
    expect(shown).toEqual(live);
  });

  it("training.log deleted while running: all 31 lines reach subscribers and an event says so", async () => {
    const task = await startTask("lines");
    await task.wrote(0);
    const firstTen = await linesUntil(studio, task.id, null, (l) => l.text === "line 10");
    // Resume after line 9: line 10 arriving proves the subscription listens (it listens, then
    // catches up), so the lines written after the delete, in no file any more, reach it live.
    const abort = new AbortController();
    const stream = followLog(
      `http://127.0.0.1:${studio.port}`,
      task.id,
      String(firstTen.at(-2)!.offset),
      abort.signal,
    );
    const after: LogLine[] = [];
    const first = await stream.next();
    after.push(...(first.value?.lines ?? []));
    await rm(join(studio.home, "tasks", task.id, "training.log"));
    task.go(1);
    for await (const batch of stream) {
      after.push(...batch.lines);
      if (batch.lines.some((l) => l.text === "line 31")) break;
    }
    abort.abort();
    await task.completed();
    expect([...firstTen.slice(0, -1), ...after].map((l) => l.text)).toEqual(
      Array.from({ length: 31 }, (_, i) => `line ${i + 1}`),
    );
    const { events } = await studio.client.task.get.query({ id: task.id });
    const warning = events.find((e) => e.type === "warning");
    expect(warning?.data).toMatchObject({ file: "training.log", kind: "deleted" });
    expect(warning?.message).toMatch(/^training\.log was deleted after byte \d+ had been read/);
  });
});
