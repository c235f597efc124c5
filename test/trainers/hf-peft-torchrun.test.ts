import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfPeftEnvironment, ONE_THREAD } from "../helpers/hf-peft";
import { processesOfTask } from "../helpers/processes";
import { TestStudio } from "../helpers/studio";
import { killGroups, waitFor } from "../helpers/wait";

/** Two processes on the CPU: 12 steps an epoch (180 rows, 2 ranks, batch 8), 96 steps. */
const SETTINGS = {
  epochs: 8,
  batchSize: 8,
  maxLength: 64,
  learningRate: 0.003,
  seed: 42,
  evalSplit: 0.1,
  evalSteps: 1000,
  saveSteps: 1000,
  loggingSteps: 1,
  processes: 2,
};

/**
 * The hf-peft trainer under torchrun, two processes on the CPU (gloo), through the studio: the
 * studio's signals reach every worker, a cancel leaves none behind, and a worker that dies is
 * named in the task's failure.
 */
describe("torchrun with two processes through the studio", () => {
  const env = hfPeftEnvironment();
  let studio: TestStudio;
  const groups: number[] = [];

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", {
      ...ONE_THREAD,
      STUDIO_PYTHON: env.python,
      HF_HUB_OFFLINE: "1",
    });
    await studio.start();
  });
  afterAll(async () => {
    killGroups(groups);
    await studio?.dispose();
  });

  const task = async (id: string) => (await studio.client.task.get.query({ id })).task;
  const dirOf = (id: string) => join(studio.home, "tasks", id);

  /** Starts a task and returns once both workers train, with the trainer's and workers' pids. */
  async function startTraining(name: string) {
    const { id } = await studio.client.task.create.mutate({
      name,
      model: env.model,
      dataset: "sample",
      trainer: "hf-peft",
      hyperparameters: SETTINGS,
    });
    await studio.client.task.start.mutate({ id });
    const { trainer } = await waitFor("the launch", () => studio.processes(id), 60_000);
    groups.push(trainer);
    await waitFor(
      "a trained step",
      async () => ((await task(id)).progress as { step: number | null }).step! > 0,
      120_000,
      20,
    );
    const workers = processesOfTask(dirOf(id)).filter((p) => p.rank !== null);
    expect(workers.map((w) => w.rank).sort()).toEqual([0, 1]);
    for (const worker of workers) {
      // Children of torchrun, in the trainer's own process group: the studio's signals reach them.
      expect(worker.ppid).toBe(trainer);
      expect(worker.pgrp).toBe(trainer);
    }
    return { id, trainer, workers };
  }

  it("pauses and resumes every worker; a cancel checkpoints and leaves no process behind", async () => {
    const { id, workers } = await startTraining("pause and cancel");

    await studio.client.task.pause.mutate({ id });
    const stopped = () =>
      processesOfTask(dirOf(id)).filter((p) => p.rank !== null && p.state === "T").length;
    await waitFor("both workers stopped", () => stopped() === 2, 10_000);
    const events = join(dirOf(id), "progress.jsonl");
    const before = readFileSync(events, "utf8");
    await new Promise((r) => setTimeout(r, 1000));
    expect(readFileSync(events, "utf8")).toBe(before);

    await studio.client.task.resume.mutate({ id });
    await waitFor("both workers running", () => stopped() === 0, 10_000);
    await waitFor(
      "training to go on",
      () => readFileSync(events, "utf8").length > before.length,
      30_000,
      20,
    );

    await studio.client.task.cancel.mutate({ id });
    const done = await waitFor(
      "the cancel",
      async () => {
        const t = await task(id);
        return t.status === "cancelled" ? t : null;
      },
      60_000,
      50,
    );
    // Every rank agreed to stop at one step, rank 0 saved the checkpoint, and all ended.
    expect(done.lastCheckpoint).toMatch(/^checkpoints\/checkpoint-\d+$/);
    expect(readFileSync(events, "utf8")).toMatch(
      /"reason": "SIGTERM: checkpoint saved at step \d+"/,
    );
    expect(processesOfTask(dirOf(id))).toEqual([]);
    for (const worker of workers) expect(() => process.kill(worker.pid, 0)).toThrow();
  }, 240_000);

  it("fails the task naming the rank of a worker killed with SIGKILL, and leaves no process behind", async () => {
    const { id, workers } = await startTraining("worker killed");
    const rank1 = workers.find((w) => w.rank === 1)!;
    process.kill(rank1.pid, "SIGKILL");
    const failed = await waitFor(
      "the failure",
      async () => {
        const t = await task(id);
        return t.status === "failed" ? t : null;
      },
      60_000,
      50,
    );
    // torchrun then stops rank 0 (SIGTERM): the reason says so after the cause.
    expect(failed.statusReason).toMatch(
      new RegExp(
        `^trainer exited with code 1: worker rank 1 \\(local rank 1, pid ${rank1.pid}\\) was killed by SIGKILL(; then rank 0 .*)?$`,
      ),
    );
    expect(processesOfTask(dirOf(id))).toEqual([]);
  }, 240_000);
});
