import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type DivergencePolicy,
  divergenceVerdict,
  emptyLossWatch,
  type LossWatch,
  observeCheckpoint,
  observeLoss,
  rollbackTarget,
} from "../../src/server/supervisor/divergence-watch";
import { parseHfLine } from "../../src/server/supervisor/hf-output-parser";
import { initialProgress, reduceProgress } from "../../src/server/supervisor/progress-state";
import { outcomeOfExit } from "../../src/server/supervisor/reconcile";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const policy: DivergencePolicy = { spikeFactor: 5, patience: 3, warmup: 8 };

function watchOf(losses: [step: number, loss: number][], checkpoints: number[] = []) {
  let watch: LossWatch = emptyLossWatch(null);
  for (const [step, loss] of losses) watch = observeLoss(watch, step, loss);
  for (const step of checkpoints)
    watch = observeCheckpoint(watch, step, `checkpoints/step-${step}`);
  return watch;
}

/** A falling loss at steps 1..n: 2/step. */
const healthy = (n: number): [number, number][] =>
  Array.from({ length: n }, (_, i) => [i + 1, 2 / (i + 1)]);

describe("the divergence watchdog's arithmetic", () => {
  it("never judges a healthy, falling or noisy loss", () => {
    expect(divergenceVerdict(watchOf(healthy(100)), policy)).toEqual({ diverged: false });
    // Noise: single spikes, and two in a row, are not a run blowing up.
    const noisy = healthy(20);
    noisy[12] = [13, 50];
    noisy[16] = [17, 50];
    noisy[17] = [18, 50];
    expect(divergenceVerdict(watchOf(noisy), policy)).toEqual({ diverged: false });
    expect(divergenceVerdict(emptyLossWatch(null), policy)).toEqual({ diverged: false });
  });

  it("calls a NaN or infinite loss divergence at once, naming the first bad step", () => {
    const nan = watchOf([...healthy(3), [4, Number.NaN], [5, Number.NaN]]);
    expect(divergenceVerdict(nan, policy)).toEqual({
      diverged: true,
      step: 4,
      lastGoodStep: 3,
      evidence: "the training loss became NaN at step 4",
    });
    expect(divergenceVerdict(watchOf([[1, Infinity]]), policy)).toMatchObject({
      step: 1,
      lastGoodStep: null,
      evidence: "the training loss became infinite at step 1",
    });
    expect(divergenceVerdict(watchOf([[1, -Infinity]]), policy)).toMatchObject({
      evidence: "the training loss became -infinite at step 1",
    });
  });

  it("calls `patience` reports in a row over factor × the median a spike, after the warm-up", () => {
    const spiking = [...healthy(10), [11, 9], [12, 9]] as [number, number][];
    // Median of 2/1..2/10 is 2/5 = 0.4 (upper middle of ten): the limit is 2.
    expect(divergenceVerdict(watchOf(spiking), policy)).toEqual({ diverged: false });
    expect(divergenceVerdict(watchOf([...spiking, [13, 9]]), policy)).toEqual({
      diverged: true,
      step: 11,
      lastGoodStep: 10,
      evidence:
        "the training loss spiked: 9 at step 13, over 5× the recent median of 0.4 since step 11",
    });
    // Looked at only later: the spikes still began at step 11.
    const later = watchOf([...spiking, [13, 9], [14, 12], [15, 15]]);
    expect(divergenceVerdict(later, policy)).toMatchObject({ step: 11, lastGoodStep: 10 });
    // Looked at 18 reports late, with the loss climbing ever since (the window's median is then
    // itself a spike): the trouble still began at step 14, and step 20's checkpoint is bad.
    const climbing = Array.from({ length: 18 }, (_, i) => [14 + i, 1000 * (i + 1)]);
    const late = watchOf([...healthy(13), ...climbing] as [number, number][], [10, 20, 30]);
    const verdict = divergenceVerdict(late, policy);
    expect(verdict).toMatchObject({ step: 14, lastGoodStep: 13, evidence: /since step 14$/ });
    if (!verdict.diverged) throw new Error("expected a verdict");
    expect(rollbackTarget(late, verdict)).toEqual({ step: 10, path: "checkpoints/step-10" });
    // Not before the warm-up: five reports and three huge ones are not judged.
    expect(
      divergenceVerdict(watchOf([...healthy(4), [5, 900], [6, 900], [7, 900]]), policy),
    ).toEqual({ diverged: false });
    // A loss that comes back down ends the run of spikes.
    expect(divergenceVerdict(watchOf([...spiking, [13, 0.1]]), policy)).toEqual({
      diverged: false,
    });
  });

  it("takes the later report of one step, and an earlier NaN wins over a later spike", () => {
    const again = observeLoss(watchOf(healthy(5)), 5, 0.3);
    expect(again.losses.at(-1)).toEqual({ step: 5, loss: 0.3 });
    expect(again.losses).toHaveLength(5);
    const both = watchOf([...healthy(10), [11, Number.NaN], [11, 9], [12, 9], [13, 9]]);
    expect(divergenceVerdict(both, policy)).toMatchObject({ step: 11, evidence: /NaN/ });
  });

  it("rolls back to the newest checkpoint no later than the last good step", () => {
    const watch = watchOf([...healthy(3), [4, Number.NaN]], [2, 3, 4]);
    const verdict = divergenceVerdict(watch, policy);
    if (!verdict.diverged) throw new Error("expected a verdict");
    expect(rollbackTarget(watch, verdict)).toEqual({ step: 3, path: "checkpoints/step-3" });
    const early = watchOf([[1, Number.NaN]], [1]);
    const first = divergenceVerdict(early, policy);
    if (!first.diverged) throw new Error("expected a verdict");
    expect(rollbackTarget(early, first)).toBeNull();
    // The checkpoint an attempt resumed from counts; the same path saved again is kept once.
    const resumed = observeCheckpoint(
      emptyLossWatch({ step: 5, path: "checkpoints/step-5" }),
      5,
      "checkpoints/step-5",
    );
    expect(resumed.checkpoints).toEqual([{ step: 5, path: "checkpoints/step-5" }]);
  });

  it("is fed from progress.jsonl (loss_not_finite) and from Hugging Face log lines (nan)", () => {
    let state = initialProgress({ step: 10, path: "checkpoints/step-10" });
    state = reduceProgress(state, {
      source: "progress",
      at: 0,
      event: {
        event: "progress",
        epoch: 1,
        total_epochs: 1,
        step: 11,
        total_steps: 20,
        loss_not_finite: "nan",
      },
    }).state;
    expect(state.lossWatch).toEqual({
      losses: [],
      nonFinite: { step: 11, value: "nan" },
      checkpoints: [{ step: 10, path: "checkpoints/step-10" }],
    });
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);

    let log = initialProgress();
    for (const line of [
      " 35%|███▌      | 7/20 [00:01<00:02,  5.00it/s]",
      "{'loss': nan, 'grad_norm': nan, 'learning_rate': 0.0001, 'epoch': 0.35}",
    ]) {
      const event = parseHfLine(line);
      if (!event) throw new Error(`not parsed: ${line}`);
      log = reduceProgress(log, { source: "log", at: 0, event }).state;
    }
    expect(log.lossWatch?.nonFinite).toEqual({ step: 7, value: "nan" });
  });

  it("ends an attempt the studio stopped for a reason as failed, for that reason", () => {
    const exit = { exitCode: 143, signal: null } as Parameters<typeof outcomeOfExit>[0];
    expect(outcomeOfExit(exit, true, "diverged: …")).toEqual({
      status: "failed",
      reason: "diverged: …",
    });
    expect(outcomeOfExit(exit, true, null)).toEqual({ status: "cancelled", reason: "cancelled" });
  });
});

describe("the studio stops a diverging run and rolls it back", () => {
  const DIVERGING = join(import.meta.dirname, "../fixtures/trainers/diverging.py");
  const python = process.env.STUDIO_PYTHON || "python3";
  let studio: TestStudio;
  afterAll(async () => {
    await studio?.dispose();
  });

  it("from the last good checkpoint at half the learning rate; without a checkpoint it stops", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "2",
      STUDIO_CANCEL_GRACE_MS: "5000",
    });
    await studio.start();
    const start = async (name: string, args: string[]) => {
      const task = await studio.client.task.create.mutate({
        name,
        model: "fixture",
        dataset: "sample",
        trainer: "command",
        command: [python, DIVERGING, "--step-ms", "60", ...args],
        hyperparameters: { learningRate: 2e-4 },
      });
      await studio.client.task.start.mutate({ id: task.id });
      return task.id;
    };
    const spikes = await start("spikes", ["--steps", "30", "--bad-from", "14", "--mode", "spike"]);
    const early = await start("nan early", ["--steps", "30", "--bad-from", "3", "--mode", "nan"]);
    const get = (id: string) => studio.client.task.get.query({ id });

    const done = await waitFor(
      "the rolled-back run to complete",
      async () => {
        const got = await get(spikes);
        return got.task.status === "completed" ? got : null;
      },
      60_000,
      100,
    );
    const types = done.events.map((e) => e.type);
    expect(types).toContain("rolled-back");
    const diverged = done.events.find((e) => e.type === "diverged")!;
    expect(diverged.message).toMatch(
      /^diverged: the training loss spiked: \d+ at step \d+, over 5× the recent median of [\d.]+ since step 14; stopped by the divergence watchdog; rolling back to checkpoints\/step-10 \(step 10\) at learning rate 0\.0001 \(was 0\.0002; rollback 1 of 2\)$/,
    );
    expect(done.task.hyperparameters.learningRate).toBe(1e-4);
    expect(done.attempts.map((a) => a.resumeFrom)).toEqual([
      expect.stringMatching(/checkpoints\/step-10$/),
      null,
    ]);
    // The first attempt ended failed for the watchdog's reason, not cancelled.
    const exited = done.events.find((e) => e.type === "exited" && e.attempt === 1);
    expect(exited?.data).toMatchObject({ cause: "diverged" });

    const stopped = await waitFor(
      "the early divergence to stop the task",
      async () => {
        const got = await get(early);
        return got.task.status === "failed" ? got : null;
      },
      30_000,
      100,
    );
    expect(stopped.task.statusReason).toBe(
      "diverged: the training loss became NaN at step 3; stopped by the divergence watchdog; not rolled back: no checkpoint from before the divergence",
    );
    expect(stopped.events.filter((e) => e.type === "rolled-back")).toEqual([]);
  }, 90_000);
});
