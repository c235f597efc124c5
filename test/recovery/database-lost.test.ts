import { copyFileSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inArray } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { tasks } from "../../src/server/db/schema";
import type { RebuildReport } from "../../src/server/recovery/rebuild-report";
import { createTestDatabase, type TestDatabase, testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { isAlive, killGroups, waitFor } from "../helpers/wait";

/** Lines "line 1 of N", "line 2 of N", … each exactly once and in order. */
function expectEveryLineOnce(lines: string[], total: number) {
  expect(lines.map((l) => l.replace(/ of \d+$/, ""))).toEqual(
    Array.from({ length: total }, (_, i) => `line ${i + 1}`),
  );
}

/** What the charts show: one loss per step (the fixture's loss is 1/step). */
async function lossesOf(studio: TestStudio, id: string) {
  const rows = await studio.client.task.metrics.query({ id });
  return rows.map((r) => [r.attempt, r.step, r.loss]);
}

const expectedLosses = (steps: number) =>
  Array.from({ length: steps }, (_, i) => [1, i + 1, 1 / (i + 1)]);

describe.each(testDatabaseKinds())("the database lost, the task folders kept (%s)", (kind) => {
  let studio: TestStudio;
  let replacement: TestDatabase | null = null;
  const trainers: number[] = [];

  afterEach(async () => {
    killGroups(trainers.splice(0));
    await studio?.dispose();
    await replacement?.drop();
    replacement = null;
  });

  async function open() {
    studio = await TestStudio.create(kind, {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "4",
      STUDIO_CANCEL_GRACE_MS: "2000",
    });
    await studio.start();
  }

  async function run(args: string[], name: string) {
    const task = await studio.fixtureTask(args, name);
    await studio.client.task.start.mutate({ id: task.id });
    const processes = await waitFor(`${name}'s trainer`, () => studio.processes(task.id));
    trainers.push(processes.trainer);
    return { id: task.id, processes };
  }

  async function statusOf(id: string) {
    return (await studio.client.task.get.query({ id })).task;
  }

  async function until(id: string, status: string) {
    return waitFor(
      `task ${id} ${status}`,
      async () => {
        const task = await statusOf(id);
        return task.status === status ? task : null;
      },
      30_000,
    );
  }

  it("`studio start` rebuilds every task; the running trainer is re-attached by identity and completes", async () => {
    await open();
    const stopFile = join(studio.home, "stop-now");
    const running = await run(
      ["--lines", "20", "--interval-ms", "20", "--until", stopFile],
      "running",
    );
    const completed = await run(["--lines", "15", "--interval-ms", "5"], "completed");
    const failed = await run(["--lines", "5", "--interval-ms", "5", "--exit-code", "3"], "failed");
    const cancelled = await run(["--lines", "5", "--interval-ms", "5", "--hang"], "cancelled");
    const pending = await studio.fixtureTask([], "pending");
    await until(completed.id, "completed");
    await until(failed.id, "failed");
    await waitFor("the hanging trainer's last line", () => studio.logOf(cancelled.id).length === 5);
    await studio.client.task.cancel.mutate({ id: cancelled.id });
    await until(cancelled.id, "cancelled");
    const losses = await lossesOf(studio, completed.id);
    expect(losses).toEqual(expectedLosses(15));
    await waitFor("the running trainer's output", () => studio.logOf(running.id).length > 5);

    await studio.stop();
    if (kind === "pglite") {
      rmSync(join(studio.home, "pglite"), { recursive: true });
    } else {
      // A new, empty PostgreSQL database for the same home.
      replacement = await createTestDatabase("postgres");
      studio.env.DATABASE_URL = replacement.url;
    }
    await studio.start();
    expect(studio.log()).toMatch(
      /rebuild from task folders: 5 rebuilt, 0 already in the database; 5 folders in \d+ ms/,
    );

    // The running trainer was not relaunched: the same processes, followed again.
    expect(await studio.processes(running.id)).toEqual(running.processes);
    expect(isAlive(running.processes.trainer)).toBe(true);
    const runningDetail = await studio.client.task.get.query({ id: running.id });
    expect(runningDetail.task).toMatchObject({ status: "training", name: "running" });
    expect(runningDetail.events.map((e) => e.type)).toEqual(["rebuilt", "recovered"]);
    expect(runningDetail.attempts).toHaveLength(1);

    // Finished tasks come back with their final status, reason and metrics.
    expect(await statusOf(completed.id)).toMatchObject({
      status: "completed",
      statusReason: "finished",
      name: "completed",
    });
    expect(await lossesOf(studio, completed.id)).toEqual(losses);
    const failedDetail = await studio.client.task.get.query({ id: failed.id });
    expect(failedDetail.task).toMatchObject({
      status: "failed",
      statusReason: "trainer exited with code 3",
    });
    expect(failedDetail.attempts[0]).toMatchObject({ exitCode: 3, signal: null });
    expect(failedDetail.events.map((e) => e.type)).toEqual(["rebuilt", "exited"]);
    expect(failedDetail.events[0]!.message).toMatch(
      /^rebuilt from its folder: the task's settings \(task\.json\); attempt 1 \(config\.json, runner\.json, exit\.json\)/,
    );
    expect(await statusOf(cancelled.id)).toMatchObject({
      status: "cancelled",
      statusReason: "cancelled",
    });
    expect(await statusOf(pending.id)).toMatchObject({ status: "pending", name: "pending" });

    // The running task goes on to the end: every line once, every step's metric stored.
    await waitFor("more output after the rebuild", () => studio.logOf(running.id).length > 30);
    writeFileSync(stopFile, "");
    const done = await until(running.id, "completed");
    const total = studio.logOf(running.id).length;
    expectEveryLineOnce(studio.logOf(running.id), total);
    expect(done.progress).toMatchObject({ step: total });
    expect(await lossesOf(studio, running.id)).toEqual(expectedLosses(total));
  }, 120_000);

  // One studio on one database (PostgreSQL when set): the rebuild is the same code on both, and
  // the test above runs it at boot on each.
  if (kind === testDatabaseKinds().at(-1)) {
    it("`studio recover` gives back tasks whose rows were deleted while it runs, and names each folder it cannot use", async () => {
      await open();
      const stopFile = join(studio.home, "stop-now");
      const running = await run(
        ["--lines", "10", "--interval-ms", "20", "--until", stopFile],
        "running",
      );
      const completed = await run(["--lines", "10", "--interval-ms", "5"], "completed");
      const untouched = await run(["--lines", "3", "--interval-ms", "5"], "untouched");
      await until(completed.id, "completed");
      const untouchedBefore = await until(untouched.id, "completed");

      // The rows go while the folders are elsewhere, so the next start has nothing to rebuild.
      await studio.stop();
      await expect(studio.cli("recover")).rejects.toThrow(
        /no studio is running on .*`studio start` rebuilds the tasks the database lost/,
      );
      const stash = join(studio.home, "stash");
      mkdirSync(stash);
      for (const id of [running.id, completed.id]) {
        renameSync(join(studio.home, "tasks", id), join(stash, id));
      }
      await studio.withDatabase((db) =>
        db.delete(tasks).where(inArray(tasks.id, [running.id, completed.id])),
      );
      await studio.start();
      await expect(studio.client.task.get.query({ id: running.id })).rejects.toThrow(/no task/);

      // Back into the tasks folder, with three folders that give no task.
      for (const id of [running.id, completed.id]) {
        renameSync(join(stash, id), join(studio.home, "tasks", id));
      }
      const tasksDir = join(studio.home, "tasks");
      mkdirSync(join(tasksDir, "tgarbled"));
      writeFileSync(join(tasksDir, "tgarbled", "config.json"), "{ half a");
      mkdirSync(join(tasksDir, "tcopied"));
      copyFileSync(
        join(tasksDir, untouched.id, "task.json"),
        join(tasksDir, "tcopied", "task.json"),
      );
      symlinkSync(stash, join(tasksDir, "tlinked"));

      const text = await studio.cli("recover");
      expect(text).toMatch(
        /^rebuild from task folders: 2 rebuilt, 3 could not be, 1 already in the database; 6 folders in \d+ ms/,
      );
      expect(text).toMatch(new RegExp(`${running.id}\\s+training\\s+1\\s+running`));
      expect(text).toMatch(
        new RegExp(`${completed.id}\\s+completed\\s+1\\s+completed\\s+finished`),
      );
      expect(text).toContain(
        'could not rebuild tasks/tgarbled: nothing in it says what the task was (task.json is missing; config.json: not JSON (8 bytes: "{ half a"))',
      );
      expect(text).toContain(
        `could not rebuild tasks/tcopied: nothing in it says what the task was (task.json: names task "${untouched.id}", not this folder's tcopied; config.json is missing)`,
      );
      expect(text).toContain(
        "could not rebuild tasks/tlinked: is a symbolic link; links are not followed",
      );

      // Asked again: nothing more to do, the same folders named.
      const again = await studio.cliJson<RebuildReport>("recover");
      expect(again).toMatchObject({ rebuilt: [], known: 3 });
      expect(again.failed.map((f) => f.folder)).toEqual(["tcopied", "tgarbled", "tlinked"]);

      expect(await statusOf(untouched.id)).toEqual(untouchedBefore);
      expect(await statusOf(completed.id)).toMatchObject({ status: "completed" });
      expect(await lossesOf(studio, completed.id)).toEqual(expectedLosses(10));
      expect(await studio.processes(running.id)).toEqual(running.processes);
      const events = (await studio.client.task.get.query({ id: running.id })).events;
      expect(events.map((e) => e.type)).toEqual(["rebuilt", "recovered"]);
      expect(events[1]!.message).toBe(
        `the task was rebuilt from its folder; training went on (pid ${running.processes.trainer})`,
      );
      await waitFor("more output after the recover", async () => {
        const progress = (await statusOf(running.id)).progress as { step: number | null };
        return (progress.step ?? 0) > 15;
      });
      writeFileSync(stopFile, "");
      await until(running.id, "completed");
      const total = studio.logOf(running.id).length;
      expectEveryLineOnce(studio.logOf(running.id), total);
      expect(await lossesOf(studio, running.id)).toEqual(expectedLosses(total));

      // A task whose folder (task.json) cannot be written is not created: it could not be rebuilt.
      rmSync(tasksDir, { recursive: true });
      writeFileSync(tasksDir, "");
      await expect(studio.fixtureTask([], "no folder")).rejects.toThrow(
        "the task's folder could not be written (ENOTDIR); nothing was created",
      );
      const names = (await studio.client.task.list.query()).items.map((t) => t.name);
      expect(names.sort()).toEqual(["completed", "running", "untouched"]);
    }, 120_000);
  }
});
