import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const REPLAY = join(import.meta.dirname, "../fixtures/monitor/replay.mjs");
const HF_LOG = join(import.meta.dirname, "../fixtures/logs/hf-trainer-tqdm.log");

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
      command: [process.execPath, REPLAY, HF_LOG, "48", "15"],
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
    expect(losses.length).toBeGreaterThanOrEqual(3);
    expect(losses[0]).toMatchObject({ step: 5, loss: 2.811 });
    expect(metrics.some((m) => m.evalLoss !== null)).toBe(true);
  });
});
