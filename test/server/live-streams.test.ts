// The page's live streams across a studio restart and a recycled stream, as its EventSource
// sees them: a cut, never tRPC's "return" (after which tRPC's client would stop), then a resume
// from the last event id with no line lost or repeated. The page itself: test/e2e/live.spec.ts.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogLine } from "../../src/server/logs/log-cursor";
import { EventSourceFollower } from "../helpers/sse";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

describe("live streams on a studio (pglite)", () => {
  let studio: TestStudio;
  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
  });

  it("a restart cuts the log, update and condition streams, STUDIO_STREAM_MAX_SECONDS recycles them; each resumes, every log line once", async () => {
    const url = `http://127.0.0.1:${studio.port}`;
    const until = join(studio.home, "finish");
    const task = await studio.fixtureTask(["--interval-ms", "20", "--until", until], "streams");
    await studio.client.task.start.mutate({ id: task.id });
    const log = new EventSourceFollower<LogLine[]>(url, "task.onLog", {
      id: task.id,
      lastEventId: null,
    });
    const updates = new EventSourceFollower(url, "task.onUpdate", undefined);
    const condition = new EventSourceFollower(url, "studio.onCondition", undefined);
    const followers = [log, updates, condition];
    try {
      await waitFor("lines", () => log.received.length > 0);
      await waitFor("every stream connected", () => followers.every((f) => f.connections === 1));

      // The next studio recycles its streams every 2 s (tRPC's sse.maxDurationMs).
      studio.env.STUDIO_STREAM_MAX_SECONDS = "2";
      await studio.restart();
      for (const follower of followers) {
        await waitFor("a recycled stream", () => follower.connections >= 3);
        // cut by the restart, then by the recycle
        expect(follower.ends.slice(0, 2)).toEqual(["cut", "cut"]);
      }
      const linesAfterRecycle = log.received.length;
      await waitFor("lines after the recycle", () => log.received.length > linesAfterRecycle);

      writeFileSync(until, "");
      await waitFor("the task completed", async () => {
        const detail = await studio.client.task.get.query({ id: task.id });
        return detail.task.status === "completed";
      });
      const file = studio.logOf(task.id);
      await waitFor("every line", () => log.received.flatMap((b) => b.data).length >= file.length);
      const lines = log.received.flatMap((batch) => batch.data);
      expect(lines.map((line) => line.text)).toEqual(file);
      const offsets = lines.map((line) => line.offset);
      expect(new Set(offsets).size).toBe(offsets.length);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      for (const follower of followers) {
        expect(follower.error).toBeNull();
        expect(follower.ends).not.toContain("return");
      }
    } finally {
      await Promise.all(followers.map((f) => f.stop()));
    }
  });
});
