import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FAILURE_CAUSES } from "../../src/server/supervisor/failure-cause";
import { type RetryCause, retryDecision } from "../../src/server/supervisor/retry-policy";
import { TestStudio } from "../helpers/studio";
import { isAlive, killGroups, waitFor } from "../helpers/wait";

const policy = { limit: 2, backoffSeconds: 10, oomSmallerBatch: false };

describe("the retry policy", () => {
  const causes: RetryCause[] = [...FAILURE_CAUSES, "runner-lost"];

  it.each(causes)("%s", (cause) => {
    const first = retryDecision(
      { cause, retriesSoFar: 0, hasCheckpoint: true, batchSize: 8 },
      policy,
    );
    const retried = ["killed", "runner-lost", "disk-full"].includes(cause);
    expect(first.retry).toBe(retried);
    if (first.retry) {
      expect(first).toEqual({
        retry: true,
        delayMs: 10_000,
        fromCheckpoint: true,
        message: "retrying automatically in 10 s (1 of 2) from the last checkpoint",
      });
    } else {
      expect(first.message).toMatch(/^not retried automatically: /);
    }
    // Off: nothing, and nothing said.
    expect(
      retryDecision(
        { cause, retriesSoFar: 0, hasCheckpoint: true, batchSize: 8 },
        { ...policy, limit: 0 },
      ),
    ).toEqual({
      retry: false,
      message: null,
    });
  });

  it("doubles the wait, caps it at an hour, starts over without a checkpoint, and stops at the limit", () => {
    const second = retryDecision(
      { cause: "killed", retriesSoFar: 1, hasCheckpoint: false, batchSize: 8 },
      policy,
    );
    expect(second).toEqual({
      retry: true,
      delayMs: 20_000,
      fromCheckpoint: false,
      message: "retrying automatically in 20 s (2 of 2)",
    });
    expect(
      retryDecision(
        { cause: "killed", retriesSoFar: 2, hasCheckpoint: true, batchSize: 8 },
        policy,
      ),
    ).toEqual({
      retry: false,
      message:
        "stopped retrying automatically: it failed 3 times in a row (the limit is 2 retries)",
    });
    const late = retryDecision(
      { cause: "killed", retriesSoFar: 19, hasCheckpoint: true, batchSize: 8 },
      { limit: 100, backoffSeconds: 3600, oomSmallerBatch: false },
    );
    expect(late).toMatchObject({ retry: true, delayMs: 3_600_000 });
  });
});

describe("out of memory, when a smaller batch is allowed", () => {
  const allowed = { ...policy, oomSmallerBatch: true };
  const oom = { cause: "out-of-memory" as const, hasCheckpoint: true, batchSize: 8 };

  it("retries from the start at half the batch size, down to 1, within the limit", () => {
    expect(retryDecision({ ...oom, retriesSoFar: 0 }, allowed)).toEqual({
      retry: true,
      delayMs: 10_000,
      fromCheckpoint: false,
      batchSize: 4,
      message:
        "retrying automatically in 10 s (1 of 2) from the start at batch size 4: out of memory at batch size 8",
    });
    expect(retryDecision({ ...oom, retriesSoFar: 1, batchSize: 3 }, allowed)).toMatchObject({
      retry: true,
      batchSize: 1,
    });
    expect(retryDecision({ ...oom, retriesSoFar: 0, batchSize: 1 }, allowed)).toEqual({
      retry: false,
      message: "not retried automatically: out of memory at batch size 1, nothing smaller to try",
    });
    expect(retryDecision({ ...oom, retriesSoFar: 2 }, allowed)).toMatchObject({ retry: false });
    // Not allowed: said how to allow it.
    expect(retryDecision({ ...oom, retriesSoFar: 0 }, policy)).toEqual({
      retry: false,
      message:
        "not retried automatically: out of memory would happen again at the same batch size; lower it and retry (or allow STUDIO_RETRY_OOM_SMALLER_BATCH)",
    });
  });
});

describe("the studio retries a task killed from outside, and stops", () => {
  const LINES = join(import.meta.dirname, "../fixtures/trainers/lines.mjs");
  const FAILING = join(import.meta.dirname, "../fixtures/trainers/failing.py");
  let studio: TestStudio;
  const trainers: number[] = [];
  afterAll(async () => {
    killGroups(trainers);
    await studio?.dispose();
  });

  it("retries twice after a backoff, then stops saying why; never retries a configuration error", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "2",
      STUDIO_RETRY_LIMIT: "2",
      STUDIO_RETRY_BACKOFF_SECONDS: "1",
      STUDIO_RETRY_OOM_SMALLER_BATCH: "1",
    });
    await studio.start();
    // Runs beside the killed one: a trainer that runs out of memory whatever its batch size.
    const oom = await studio.client.task.create.mutate({
      name: "oom",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [process.env.STUDIO_PYTHON || "python3", FAILING, "--fail", "memory"],
      hyperparameters: { batchSize: 8 },
    });
    await studio.client.task.start.mutate({ id: oom.id });
    const task = await studio.client.task.create.mutate({
      name: "killed",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [
        process.execPath,
        LINES,
        "--task-dir",
        ".",
        "--lines",
        "100000",
        "--interval-ms",
        "50",
      ],
    });
    await studio.client.task.start.mutate({ id: task.id });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const trainer = await waitFor(`attempt ${attempt}'s trainer`, async () => {
        const d = await studio.client.task.get.query({ id: task.id });
        const a = d.attempts.find((x) => x.number === attempt);
        return d.task.status === "training"
          ? (a?.handle as { trainer?: { pid: number } })?.trainer?.pid
          : null;
      });
      trainers.push(trainer);
      process.kill(-trainer, "SIGKILL");
      await waitFor("the trainer to be gone", () => !isAlive(trainer));
    }
    const done = await waitFor("the policy to stop", async () => {
      const d = await studio.client.task.get.query({ id: task.id });
      return d.events.some((e) => e.type === "retry-policy") ? d : null;
    });
    expect(done.task.status).toBe("failed");
    expect(done.task.statusReason).toMatch(/^trainer killed by SIGKILL, not sent by the studio/);
    expect(done.attempts).toHaveLength(3);
    const said = done.events
      .filter((e) => ["auto-retry", "retry-policy"].includes(e.type))
      .map((e) => e.message);
    expect(said).toEqual([
      "retrying automatically in 1 s (1 of 2)",
      "retrying automatically in 2 s (2 of 2)",
      "stopped retrying automatically: it failed 3 times in a row (the limit is 2 retries)",
    ]);

    const smaller = await waitFor("the smaller batches to run out", async () => {
      const d = await studio.client.task.get.query({ id: oom.id });
      return d.events.some((e) => e.type === "retry-policy") ? d : null;
    });
    expect(smaller.task.statusReason).toMatch(/^out of memory/);
    expect(smaller.task.hyperparameters.batchSize).toBe(2);
    expect(
      smaller.events
        .filter((e) => ["auto-retry", "retry-policy"].includes(e.type))
        .map((e) => e.message),
    ).toEqual([
      "retrying automatically in 1 s (1 of 2) from the start at batch size 4: out of memory at batch size 8",
      "retrying automatically in 2 s (2 of 2) from the start at batch size 2: out of memory at batch size 4",
      "stopped retrying automatically: it failed 3 times in a row (the limit is 2 retries)",
    ]);

    const config = await studio.client.task.create.mutate({
      name: "config",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [process.env.STUDIO_PYTHON || "python3", FAILING, "--fail", "config"],
    });
    await studio.client.task.start.mutate({ id: config.id });
    const refused = await waitFor("the policy's word", async () => {
      const d = await studio.client.task.get.query({ id: config.id });
      return d.events.find((e) => e.type === "retry-policy");
    });
    expect(refused.message).toBe(
      "not retried automatically: a configuration error would happen again; fix the settings and retry",
    );
    expect((await studio.client.task.get.query({ id: config.id })).attempts).toHaveLength(1);
  }, 90_000);
});
