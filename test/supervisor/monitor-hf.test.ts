import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const REPLAY = join(import.meta.dirname, "../fixtures/monitor/replay.mjs");
/** Recorded from a loop that prints its metrics while its tqdm bar is active (see record.sh there). */
const HF_LOG = join(import.meta.dirname, "../fixtures/hf-output/custom-loop.log");
const TRUTH = join(import.meta.dirname, "../fixtures/hf-output/custom-loop.truth.json");

describe("progress from an unmodified Hugging Face script's output", () => {
  let studio: TestStudio;
  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    await studio.start();
  });
  afterAll(() => studio.dispose());

  it("follows the tqdm bar live and stores loss rows for the charts", async () => {
    const task = await studio.client.task.create.mutate({
      name: "hf script",
      model: "gpt2",
      dataset: "sample",
      trainer: "command",
      command: [process.execPath, REPLAY, HF_LOG, "24", "15"],
    });
    await studio.client.task.start.mutate({ id: task.id });
    // Seen mid-bar, before the line that holds it is complete.
    await waitFor("a live step count", async () => {
      const { task: t } = await studio.client.task.get.query({ id: task.id });
      const step = (t.progress as { step: number | null }).step;
      return t.status === "training" && step !== null && step > 0 && step < 30;
    });
    await waitFor("completion", async () => {
      const { task: t } = await studio.client.task.get.query({ id: task.id });
      return t.status === "completed";
    });
    const { task: done } = await studio.client.task.get.query({ id: task.id });
    expect(done.progress).toMatchObject({ step: 30, totalSteps: 30, percent: 100 });
    const metrics = await studio.client.task.metrics.query({ id: task.id });
    const losses = metrics.filter((m) => m.loss !== null);
    // Every dict came right after an unfinished bar: none may be lost, nor the last step. What
    // the script printed is in its truth file.
    const printed = JSON.parse(readFileSync(TRUTH, "utf8")) as Record<string, number>[];
    const trainLosses = printed.filter((d) => "loss" in d).map((d) => d.loss);
    const evalLosses = printed.filter((d) => "eval_loss" in d).map((d) => d.eval_loss);
    expect(losses.map((m) => m.loss)).toEqual(trainLosses);
    const steps = losses.map((m) => m.step);
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
    expect(metrics.filter((m) => m.evalLoss !== null).map((m) => m.evalLoss)).toEqual(evalLosses);
    expect(done.progress).toMatchObject({ loss: trainLosses.at(-1), evalLoss: evalLosses.at(-1) });
  });
});
