import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECORD_VERSION } from "../../src/runner/records";
import { attempts } from "../../src/server/db/schema";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { isAlive, killGroups, waitFor } from "../helpers/wait";

/**
 * Puts a file in place at once (written beside it, then renamed), as a record appears: the
 * studio, looking every moment, must not catch it half-written (an empty file is another fault).
 */
function placeFile(path: string, content: string) {
  writeFileSync(`${path}.placing`, content);
  renameSync(`${path}.placing`, path);
}

/**
 * Issue #10's reproductions, as written: a runner killed while the studio runs, a corrupt or
 * forged exit.json (live and at boot), a stored handle that no longer parses, and a cancel whose
 * grace period runs out while no studio is up. Each fault stays inside its task.
 */
describe.each(testDatabaseKinds())("faults confined to their task (%s)", (kind) => {
  let studio: TestStudio;
  const trainers: number[] = [];

  beforeAll(async () => {
    studio = await TestStudio.create(kind, {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "8",
      STUDIO_CANCEL_GRACE_MS: "1500",
    });
    await studio.start();
  });

  afterAll(async () => {
    killGroups(trainers);
    await studio?.dispose();
  });

  const dirOf = (id: string) => join(studio.home, "tasks", id);
  const get = (id: string) => studio.client.task.get.query({ id });

  async function startFixture(args: string[], name = "fixture") {
    const task = await studio.fixtureTask(args, name);
    await studio.client.task.start.mutate({ id: task.id });
    const processes = await waitFor("the trainer to start", () => studio.processes(task.id));
    trainers.push(processes.trainer);
    return { id: task.id, ...processes };
  }

  async function statusBecomes(id: string, status: string) {
    return waitFor(`task ${id} to be ${status}`, async () => {
      const detail = await get(id);
      return detail.task.status === status ? detail : null;
    });
  }

  const eventLike = async (id: string, pattern: RegExp) =>
    waitFor(`an event matching ${pattern}`, async () =>
      (await get(id)).events.find((e) => pattern.test(e.message)),
    );

  it("ends the trainer when its runner is killed, and a retry runs exactly one trainer", async () => {
    const t = await startFixture(["--lines", "1", "--hang"]);
    process.kill(t.runner, "SIGKILL");
    const detail = await statusBecomes(t.id, "failed");
    // A runner killed under a reaper that has not collected it yet is a zombie: ended all the same.
    expect(detail.task.statusReason).toMatch(
      /^Training process terminated unexpectedly: runner (gone|exited \(zombie\)) without recording an exit; trainer still running$/,
    );
    await waitFor("the orphaned trainer to be ended", () => !isAlive(t.trainer), 5_000);

    await studio.client.task.retry.mutate({ id: t.id, fromCheckpoint: false });
    const second = await waitFor("attempt 2's processes", async () => {
      const p = await studio.processes(t.id);
      return p && p.trainer !== t.trainer ? p : null;
    });
    trainers.push(second.trainer);
    expect(isAlive(second.trainer)).toBe(true);
    expect(isAlive(t.trainer)).toBe(false);
    await studio.client.task.cancel.mutate({ id: t.id });
    await statusBecomes(t.id, "cancelled");
  });

  it("does not believe a corrupt exit.json while the runner runs, then records the real outcome", async () => {
    const until = join(studio.home, "corrupt-live.until");
    const t = await startFixture(["--lines", "1", "--interval-ms", "50", "--until", until]);
    placeFile(join(dirOf(t.id), "exit.json"), "CORRUPT{{{");
    const warning = await eventLike(t.id, /exit\.json is unreadable/);
    expect(warning.message).toBe(
      'exit.json is unreadable: not JSON (10 bytes: "CORRUPT{{{"); the runner still runs, so its own record is awaited',
    );
    expect((await get(t.id)).task.status).toBe("training");
    writeFileSync(until, "");
    const done = await statusBecomes(t.id, "completed");
    expect(done.attempts[0]).toMatchObject({ exitCode: 0 });
    // A warning is given once per attempt, not once per check.
    expect(done.events.filter((e) => e.type === "warning")).toHaveLength(1);
  });

  it("does not believe a forged exit.json while the proven trainer runs; cancel still works", async () => {
    const t = await startFixture(["--lines", "1", "--hang"]);
    const forged = {
      version: 1,
      attempt: 1,
      exitCode: 0,
      signal: null,
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
      trainerPid: t.trainer,
      runnerPid: t.runner,
    };
    placeFile(join(dirOf(t.id), "exit.json"), JSON.stringify(forged));
    const warning = await eventLike(t.id, /not believed/);
    expect(warning.message).toBe(
      `exit.json says the trainer exited with code 0, but its trainer (pid ${t.trainer}) is still running: not believed`,
    );
    expect((await get(t.id)).task.status).toBe("training");
    await studio.client.task.cancel.mutate({ id: t.id });
    const done = await statusBecomes(t.id, "cancelled");
    expect(done.attempts[0]).toMatchObject({ signal: "SIGTERM" });
    expect(isAlive(t.trainer)).toBe(false);
  });

  it("at boot: a corrupt exit.json fails its task by name, a broken handle is recovered, the rest go on", async () => {
    const until = join(studio.home, "boot.until");
    const ended = await startFixture(["--lines", "3"], "ended-while-down");
    await statusBecomes(ended.id, "completed");
    const brokenHandle = await startFixture([
      "--lines",
      "1",
      "--interval-ms",
      "50",
      "--until",
      until,
    ]);
    const healthy = await startFixture(["--lines", "1", "--interval-ms", "50", "--until", until]);
    await studio.stop();

    // While the studio is down: one task's record is corrupted, another's stored handle.
    await studio.withDatabase(async (db) => {
      const [a] = await db.select().from(attempts).where(eq(attempts.taskId, ended.id));
      // Put the finished task back as the studio would have found it mid-run.
      await db.execute(
        `update tasks set status = 'training', finished_at = null where id = '${ended.id}'`,
      );
      await db.update(attempts).set({ endedAt: null }).where(eq(attempts.id, a!.id));
      await db
        .update(attempts)
        .set({ handle: { kind: "local", trainer: "not a process" } })
        .where(eq(attempts.taskId, brokenHandle.id));
    });
    placeFile(join(dirOf(ended.id), "exit.json"), "CORRUPT{{{");

    await studio.start();
    const failed = await statusBecomes(ended.id, "failed");
    // The runner ended long before, re-parented to init: gone, or a zombie init has not reaped yet.
    expect(failed.task.statusReason).toMatch(
      /^The attempt's record cannot be believed: exit\.json is unreadable: not JSON \(10 bytes: "CORRUPT\{\{\{"\); runner (gone|exited \(zombie\)); trainer gone$/,
    );
    const recovered = await eventLike(brokenHandle.id, /stored handle of attempt 1 was unreadable/);
    expect(recovered.message).toMatch(/runner\.json proved the processes and replaced it/);
    expect((await get(brokenHandle.id)).task.status).toBe("training");

    writeFileSync(until, "");
    await statusBecomes(brokenHandle.id, "completed");
    await statusBecomes(healthy.id, "completed");
    expect(studio.log()).toMatch(/boot reconciliation: .*1 failed-unexpectedly/);
  });

  it("finishes a cancel on time with no studio running: the runner keeps the grace", async () => {
    const t = await startFixture(["--lines", "1", "--ignore-sigterm", "--hang"]);
    // The first line is printed once SIGTERM is ignored.
    await waitFor("the trainer's first line", () => studio.logOf(t.id).length > 0);
    await studio.client.task.cancel.mutate({ id: t.id });
    await studio.kill();
    // The grace is 1.5 s; nothing of the studio runs to send the SIGKILL.
    await waitFor("the runner to end the trainer", () => !isAlive(t.trainer), 10_000);
    const exit = await waitFor("exit.json", () =>
      JSON.parse(readFileSync(join(dirOf(t.id), "exit.json"), "utf8")),
    );
    expect(studio.logOf(t.id)).toContain("SIGTERM ignored");
    expect(exit).toMatchObject({
      version: RECORD_VERSION,
      attempt: 1,
      exitCode: null,
      signal: "SIGKILL",
    });
    expect(existsSync(join(dirOf(t.id), "cancel.json"))).toBe(true);

    await studio.start();
    const done = await statusBecomes(t.id, "cancelled");
    expect(done.task.statusReason).toBe("cancelled");
  });
});
