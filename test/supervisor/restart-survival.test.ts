import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { isAlive, killGroups, waitFor } from "../helpers/wait";

/** Lines "line 1 of N", "line 2 of N", … each exactly once and in order. */
function expectEveryLineOnce(lines: string[], total: number) {
  expect(lines.map((l) => l.replace(/ of \d+$/, ""))).toEqual(
    Array.from({ length: total }, (_, i) => `line ${i + 1}`),
  );
}

async function statusOf(studio: TestStudio, id: string) {
  return (await studio.client.task.get.query({ id })).task;
}

describe.each(testDatabaseKinds())("trainers outlive the studio (%s)", (kind) => {
  let studio: TestStudio;
  const trainers: number[] = [];

  afterEach(async () => {
    killGroups(trainers.splice(0));
    await studio?.dispose();
  });

  /** Creates and starts a fixture task; returns it once its processes are known. */
  async function startFixture(args: string[]) {
    const task = await studio.fixtureTask(args);
    await studio.client.task.start.mutate({ id: task.id });
    const processes = await waitFor("the trainer to start", () => studio.processes(task.id));
    trainers.push(processes.trainer);
    return { task, processes };
  }

  async function open(env: Record<string, string> = {}) {
    studio = await TestStudio.create(kind, { STUDIO_ALLOW_COMMAND_TRAINER: "1", ...env });
    await studio.start();
    return studio;
  }

  it("keeps the same trainer through `studio restart` and completes with every line once", async () => {
    await open();
    // The trainer runs until the test says so: however slow the restart, it lands mid-run.
    const until = join(studio.home, "stop-now");
    const { task, processes: before } = await startFixture([
      "--lines",
      "100",
      "--interval-ms",
      "20",
      "--until",
      until,
    ]);
    await waitFor("some output", () => studio.logOf(task.id).length > 10);

    const studioPid = studio.pid();
    await studio.restart();
    expect(studio.pid()).not.toBe(studioPid);
    expect(isAlive(before.trainer)).toBe(true);
    expect(isAlive(before.runner)).toBe(true);
    expect(await studio.processes(task.id)).toEqual(before);
    expect((await statusOf(studio, task.id)).status).toBe("training");
    const events = (await studio.client.task.get.query({ id: task.id })).events.map((e) => e.type);
    expect(events).toContain("recovered");

    writeFileSync(until, "");
    const done = await waitFor("completion", async () => {
      const t = await statusOf(studio, task.id);
      return t.status === "completed" ? t : null;
    });
    expect(done.statusReason).toBe("finished");
    const lines = studio.logOf(task.id);
    expect(lines.length).toBeGreaterThanOrEqual(100);
    expectEveryLineOnce(lines, lines.length);
  }, 90_000);

  // Ten studio starts in one test: on one database (PostgreSQL when set); the other tests of this
  // file and the chaos run cover both.
  if (kind === testDatabaseKinds().at(-1)) {
    it("survives ten SIGKILLs of the studio during one run", async () => {
      await open();
      // The trainer runs until the test says so, so every kill lands in the middle of the run.
      const until = join(studio.home, "stop-now");
      const { task, processes: first } = await startFixture([
        "--lines",
        "100",
        "--interval-ms",
        "10",
        "--until",
        until,
      ]);
      for (let i = 0; i < 10; i++) {
        await studio.kill("SIGKILL");
        expect(isAlive(first.trainer)).toBe(true);
        await studio.start();
        expect(await studio.processes(task.id)).toEqual(first);
      }
      writeFileSync(until, "");
      await waitFor(
        "completion",
        async () => (await statusOf(studio, task.id)).status === "completed",
        30_000,
      );
      const lines = studio.logOf(task.id);
      const total = lines.length;
      expect(total).toBeGreaterThan(100);
      expectEveryLineOnce(lines, total);
      const detail = await studio.client.task.get.query({ id: task.id });
      expect(detail.attempts).toHaveLength(1);
      expect(detail.task.progress).toMatchObject({ step: total });
    }, 120_000);

    it("keeps the built-in trainer through `studio restart` mid-run; it completes with an adapter", async () => {
      await open();
      // 36 training rows of the shipped sample, batch 4: 9 steps an epoch, 34 epochs: 306 steps
      // (seconds), ample time to pause it after its first step; paused across the restart, the
      // trainer is mid-run there however fast it trains.
      const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
        .split("\n")
        .slice(0, 40)
        .join("\n");
      const dataset = await studio.client.dataset.upload.mutate({
        fileName: "forty.jsonl",
        contentBase64: Buffer.from(rows).toString("base64"),
      });
      const task = await studio.client.task.create.mutate({
        name: "built-in",
        model: "builtin:tiny",
        dataset: dataset.id,
        hyperparameters: { epochs: 34, batchSize: 4, maxLength: 48, loraRank: 4, loggingSteps: 1 },
      });
      await studio.client.task.start.mutate({ id: task.id });
      const before = await waitFor("the launch", () => studio.processes(task.id), 30_000);
      trainers.push(before.trainer);
      await waitFor(
        "a trained step",
        async () =>
          ((await statusOf(studio, task.id)).progress as { step: number | null }).step! > 0,
        60_000,
      );

      await studio.client.task.pause.mutate({ id: task.id });
      await studio.restart();
      expect(isAlive(before.trainer)).toBe(true);
      expect(await studio.processes(task.id)).toEqual(before);
      expect((await statusOf(studio, task.id)).status).toBe("paused");
      await studio.client.task.resume.mutate({ id: task.id });
      expect((await statusOf(studio, task.id)).status).toBe("training");

      const done = await waitFor(
        "completion",
        async () => {
          const t = await statusOf(studio, task.id);
          return t.status === "completed" ? t : null;
        },
        90_000,
        50,
      );
      expect(done.statusReason).toBe("finished");
      const detail = await studio.client.task.get.query({ id: task.id });
      expect(detail.events.map((e) => e.type)).toContain("recovered");
      expect(detail.attempts).toHaveLength(1);
      // Every step's loss once, across the restart.
      const metrics = await studio.client.task.metrics.query({ id: task.id });
      const steps = metrics.filter((m) => m.loss !== null).map((m) => m.step);
      expect(steps).toEqual(Array.from({ length: 306 }, (_, i) => i + 1));
      for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
        expect(existsSync(join(studio.home, "tasks", task.id, file))).toBe(true);
      }
      const text = await studio.cli(
        "task",
        "sample",
        task.id,
        "--prompt",
        "### Instruction:",
        "--max-new-tokens",
        "20",
      );
      expect(text.length).toBeGreaterThan(0);
    }, 180_000);
  }

  // Four tasks, one studio: whatever ends while the studio is down is recorded exactly at its
  // next start.
  it("records what happened while the studio was down: exits 0 and 3, a trainer killed, a runner killed", async () => {
    await open({ STUDIO_CONCURRENCY: "4" });
    // The two that exit by themselves hold until the studio is down.
    const until = join(studio.home, "exit-now");
    const holding = ["--lines", "30", "--interval-ms", "30", "--until", until];
    const exits0 = await startFixture([...holding, "--exit-code", "0"]);
    const exits3 = await startFixture([...holding, "--exit-code", "3"]);
    const trainerKilled = await startFixture(["--lines", "1000", "--interval-ms", "20"]);
    const runnerKilled = await startFixture(["--lines", "1000", "--interval-ms", "20"]);
    await studio.kill("SIGKILL");
    process.kill(trainerKilled.processes.trainer, "SIGKILL");
    process.kill(runnerKilled.processes.runner, "SIGKILL");
    writeFileSync(until, "");
    for (const { processes } of [exits0, exits3, trainerKilled, runnerKilled]) {
      await waitFor("the runner to end", () => !isAlive(processes.runner), 10_000);
    }
    await studio.start();
    const get = (id: string) => studio.client.task.get.query({ id });

    for (const [{ task }, status, exitCode] of [
      [exits0, "completed", 0],
      [exits3, "failed", 3],
    ] as const) {
      const detail = await get(task.id);
      expect(detail.task.status).toBe(status);
      expect(detail.attempts[0]).toMatchObject({ exitCode, signal: null });
      const lines = studio.logOf(task.id);
      expect(lines.length).toBeGreaterThanOrEqual(30);
      expectEveryLineOnce(lines, lines.length);
    }

    const killed = await get(trainerKilled.task.id);
    expect(killed.task.status).toBe("failed");
    expect(killed.task.statusReason).toMatch(/SIGKILL/);
    expect(killed.attempts[0]).toMatchObject({ exitCode: null, signal: "SIGKILL" });

    // Without its runner nobody could record the trainer's outcome: failed, with no invented
    // exit code, and the studio stopped the orphaned trainer.
    const orphaned = await get(runnerKilled.task.id);
    expect(orphaned.task.status).toBe("failed");
    expect(orphaned.task.statusReason).toMatch(/Training process terminated unexpectedly/);
    expect(orphaned.attempts[0]).toMatchObject({ exitCode: null, signal: null });
    await waitFor(
      "the orphaned trainer to be stopped",
      () => !isAlive(runnerKilled.processes.trainer),
    );
  });
});
