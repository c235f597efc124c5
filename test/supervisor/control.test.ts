import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { readStat } from "../../src/platform/identity";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { isAlive, waitFor } from "../helpers/wait";

// On the embedded database, the default: what this file checks (signals, the cancel's grace,
// pause, a reboot, pid reuse, queue order) is the supervisor's, the same on both databases, and
// the suites about the database under it (record faults, restarts, fencing, outages, takeover)
// run on PostgreSQL as well.
describe.each(["pglite"] as const)("control of running tasks (%s)", (kind) => {
  let studio: TestStudio;
  const groups: number[] = [];

  afterEach(async () => {
    for (const pgid of groups.splice(0)) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {}
    }
    await studio?.dispose();
  });

  async function open(env: Record<string, string> = {}) {
    studio = await TestStudio.create(kind, { STUDIO_ALLOW_COMMAND_TRAINER: "1", ...env });
    await studio.start();
  }

  async function trainerOf(id: string) {
    const handle = await waitFor("the trainer to start", async () => {
      const detail = await studio.client.task.get.query({ id });
      return detail.attempts[0]?.handle as
        | { runner: { pid: number; startTime: string }; trainer: { pid: number } }
        | undefined;
    });
    groups.push(handle.trainer.pid);
    return handle;
  }

  const status = async (id: string) => (await studio.client.task.get.query({ id })).task.status;

  it("cancels a trainer that ignores SIGTERM: SIGKILL after the grace period, grandchild too", async () => {
    await open({ STUDIO_CANCEL_GRACE_MS: "1500" });
    const pidFile = join(mkdtempSync(join(tmpdir(), "grandchild-")), "pid");
    const task = await studio.fixtureTask([
      "--lines",
      "100000",
      "--interval-ms",
      "20",
      "--ignore-sigterm",
      "--grandchild",
      pidFile,
    ]);
    await studio.client.task.start.mutate({ id: task.id });
    const handle = await trainerOf(task.id);
    const grandchild = Number(await waitFor("the grandchild", () => readFileSync(pidFile, "utf8")));
    const asked = Date.now();
    await studio.client.task.cancel.mutate({ id: task.id });
    await waitFor("SIGTERM to arrive", () =>
      readFileSync(join(studio.home, "tasks", task.id, "training.log"), "utf8").includes(
        "SIGTERM ignored",
      ),
    );
    expect(isAlive(handle.trainer.pid)).toBe(true);
    await waitFor("cancelled", async () => (await status(task.id)) === "cancelled", 15_000);
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1500);
    expect(isAlive(handle.trainer.pid)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
    const detail = await studio.client.task.get.query({ id: task.id });
    expect(detail.attempts[0]).toMatchObject({ signal: "SIGKILL" });
    expect(detail.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["cancel-requested", "exited"]),
    );
  });

  it("keeps a paused task paused across a restart, then resumes it", async () => {
    await open();
    const task = await studio.fixtureTask(["--lines", "200", "--interval-ms", "20"]);
    await studio.client.task.start.mutate({ id: task.id });
    const handle = await trainerOf(task.id);
    await waitFor("output", () => studio.logOf(task.id).length > 5);
    await studio.client.task.pause.mutate({ id: task.id });
    expect(await status(task.id)).toBe("paused");
    // SIGSTOP is sent, not yet acted on: the kernel stops the trainer when it next runs.
    await waitFor("the trainer to stop", () => readStat(handle.trainer.pid)?.state === "T");
    const printed = studio.logOf(task.id).length;
    await studio.restart();
    expect(await status(task.id)).toBe("paused");
    expect(readStat(handle.trainer.pid)?.state).toBe("T");
    expect(studio.logOf(task.id).length).toBe(printed);
    await studio.client.task.resume.mutate({ id: task.id });
    await waitFor("completion", async () => (await status(task.id)) === "completed", 20_000);
    expect(studio.logOf(task.id)).toHaveLength(200);
  });

  it("starts one trainer for ten concurrent starts", async () => {
    await open();
    const task = await studio.fixtureTask(["--lines", "20", "--interval-ms", "10"]);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => studio.client.task.start.mutate({ id: task.id })),
    );
    expect(results.every((r) => r.status === "fulfilled")).toBe(true);
    await waitFor("completion", async () => (await status(task.id)) === "completed");
    const detail = await studio.client.task.get.query({ id: task.id });
    expect(detail.attempts).toHaveLength(1);
    expect(detail.events.filter((e) => e.type === "started")).toHaveLength(1);
    expect(studio.logOf(task.id)).toHaveLength(20);
  });

  it("runs three tasks one at a time in queue order, also across a restart", async () => {
    await open({ STUDIO_CONCURRENCY: "1" });
    const tasks: Awaited<ReturnType<TestStudio["fixtureTask"]>>[] = [];
    for (const name of ["first", "second", "third"]) {
      tasks.push(await studio.fixtureTask(["--lines", "40", "--interval-ms", "25"], name));
    }
    for (const t of tasks) await studio.client.task.start.mutate({ id: t.id });
    await trainerOf(tasks[0]!.id);
    expect(await status(tasks[1]!.id)).toBe("queued");
    expect((await studio.client.task.get.query({ id: tasks[2]!.id })).queuePosition).toBe(2);
    // A waiting task says why (the third waits longest: through the first two runs).
    await waitFor(
      "the waiting reason",
      async () =>
        (await studio.client.task.get.query({ id: tasks[2]!.id })).task.statusReason ===
        "waiting for a free slot (1 task runs at once)",
    );
    await studio.kill("SIGKILL");
    await studio.start();
    for (const t of tasks) {
      await waitFor(
        `${t.name} to complete`,
        async () => (await status(t.id)) === "completed",
        30_000,
      );
    }
    const starts = await Promise.all(
      tasks.map(async (t) => (await studio.client.task.get.query({ id: t.id })).attempts[0]!),
    );
    for (let i = 1; i < starts.length; i++) {
      // Never two at once: each began after the one before it ended.
      expect(starts[i]!.startedAt!.getTime()).toBeGreaterThanOrEqual(
        starts[i - 1]!.endedAt!.getTime(),
      );
    }
  }, 90_000);

  it("marks tasks interrupted after a reboot and sends no signal", async () => {
    const bootFile = join(mkdtempSync(join(tmpdir(), "boot-")), "boot_id");
    writeFileSync(bootFile, "11111111-1111-1111-1111-111111111111\n");
    // This test process judges the studio's liveness too, so it must see the same "boot".
    process.env.STUDIO_BOOT_ID_FILE = bootFile;
    onTestFinished(() => {
      delete process.env.STUDIO_BOOT_ID_FILE;
    });
    await open({ STUDIO_BOOT_ID_FILE: bootFile });
    const task = await studio.fixtureTask(["--lines", "100000", "--interval-ms", "20"]);
    await studio.client.task.start.mutate({ id: task.id });
    const handle = await trainerOf(task.id);
    await studio.kill("SIGKILL");
    writeFileSync(bootFile, "22222222-2222-2222-2222-222222222222\n");
    await studio.start();
    const detail = await studio.client.task.get.query({ id: task.id });
    expect(detail.task.status).toBe("interrupted");
    expect(detail.attempts[0]).toMatchObject({ exitCode: null, signal: null });
    // The "old boot's" processes were never ours to signal: they still run.
    expect(isAlive(handle.trainer.pid)).toBe(true);
    expect(isAlive(handle.runner.pid)).toBe(true);
    expect(detail.actions.retry).toBe(true);
  });

  it("never adopts or signals a process whose pid was reused", async () => {
    await open();
    const task = await studio.fixtureTask(["--lines", "100000", "--interval-ms", "20"]);
    await studio.client.task.start.mutate({ id: task.id });
    const handle = await trainerOf(task.id);
    await studio.stop();
    // Make the records name the same pids with other start times: what a reused pid looks like.
    const runnerJson = join(studio.home, "tasks", task.id, "runner.json");
    const record = JSON.parse(readFileSync(runnerJson, "utf8"));
    record.runner.startTime = "1";
    record.trainer.startTime = "1";
    writeFileSync(runnerJson, JSON.stringify(record));
    await studio.forgeAttemptHandle(task.id, record);
    await studio.start();
    const detail = await studio.client.task.get.query({ id: task.id });
    expect(detail.task.status).toBe("failed");
    expect(detail.task.statusReason).toMatch(/terminated unexpectedly/);
    expect(isAlive(handle.trainer.pid)).toBe(true);
    expect(readStat(handle.trainer.pid)?.state).not.toBe("T");
  });
});

describe("one studio per home and per database", () => {
  it("refuses a second studio on the same home, naming the running one", async () => {
    const studio = await TestStudio.create("pglite");
    try {
      const pid = await studio.start();
      const err = await studio.cli("start", "--foreground").catch((e: Error) => e);
      expect(String(err)).toMatch(new RegExp(`another studio is already running.*pid ${pid}`));
    } finally {
      await studio.dispose();
    }
  });
});

describe.runIf(testDatabaseKinds().includes("postgres"))(
  "one supervisor per PostgreSQL database",
  () => {
    it("serves a second studio on the same database read-only", async () => {
      const first = await TestStudio.create("postgres");
      const second = await TestStudio.create("pglite", { DATABASE_URL: first.env.DATABASE_URL });
      try {
        await first.start();
        await second.start();
        const info = await second.client.studio.info.query();
        expect(info.readOnly).toMatch(/another studio supervises/);
        expect((await first.client.studio.info.query()).readOnly).toBeNull();
        await expect(
          second.client.task.create.mutate({ name: "x", model: "builtin:tiny", dataset: "sample" }),
        ).rejects.toThrow(/read-only/);
        // The first one's release lets a later studio supervise.
        await first.stop();
        await second.restart();
        expect((await second.client.studio.info.query()).readOnly).toBeNull();
      } finally {
        await second.dispose();
        await first.dispose();
      }
    });
  },
);
