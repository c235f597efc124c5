import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StepClock, slowWorkDue } from "../../src/server/supervisor/stall-watch";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const policy = { factor: 10, minMs: 1_000, slowMs: 60_000 };

/** A clock that saw `steps` at these times. */
function clockOf(points: [step: number, at: number][]) {
  const clock = new StepClock();
  for (const [step, at] of points) clock.observe(step, at);
  return clock;
}

describe("the stall watchdog's arithmetic", () => {
  it("judges nothing before two steps were seen", () => {
    expect(new StepClock().verdict(1e9, policy)).toEqual({ stalled: false });
    expect(clockOf([[1, 0]]).verdict(1e9, policy)).toEqual({ stalled: false });
    const none = new StepClock();
    none.observe(null, 0);
    expect(none.verdict(1e9, policy)).toEqual({ stalled: false });
  });

  it("allows factor × the median step time, never less than the minimum", () => {
    // 200 ms a step (one 5-s outlier does not move the median): budget 2 s.
    const clock = clockOf([
      [1, 0],
      [2, 200],
      [3, 400],
      [4, 5_400],
      [5, 5_600],
    ]);
    expect(clock.verdict(7_600, policy)).toEqual({ stalled: false });
    expect(clock.verdict(7_601, policy)).toEqual({
      stalled: true,
      sinceMs: 2_001,
      budgetMs: 2_000,
      medianStepMs: 200,
      step: 5,
      due: null,
    });
    // Fast steps: the minimum holds.
    const fast = clockOf([
      [10, 0],
      [20, 10],
    ]);
    expect(fast.verdict(1_010, policy).stalled).toBe(false);
    expect(fast.verdict(1_011, policy)).toMatchObject({
      stalled: true,
      budgetMs: 1_000,
      medianStepMs: 1,
    });
  });

  it("measures per step when several steps pass between looks, ignores repeats, restarts on a step back, and a reset stops the clock", () => {
    const clock = clockOf([
      [0, 0],
      [0, 500],
      [10, 1_000],
    ]);
    expect(clock.verdict(1_000 + 1_001, policy)).toMatchObject({
      stalled: true,
      medianStepMs: 100,
    });
    clock.observe(3, 3_000);
    expect(clock.verdict(1e9, policy)).toEqual({ stalled: false });
    clock.observe(4, 3_100);
    expect(clock.verdict(4_101, policy)).toMatchObject({ stalled: true, step: 4 });
    clock.reset();
    expect(clock.verdict(1e9, policy)).toEqual({ stalled: false });
  });
});

describe("the stall watchdog's longer budget for evaluations and checkpoint saves", () => {
  const schedule = { evalSteps: 50, saveSteps: 100, loggingSteps: 5, evaluates: true };

  it("knows from the task's schedule when slow work is due before the next report", () => {
    // Reported at the evaluation step itself (the trainer logs, then evaluates), or just before.
    expect(slowWorkDue(50, schedule, 1000)).toBe("an evaluation");
    expect(slowWorkDue(47, schedule, 1000)).toBe("an evaluation");
    expect(slowWorkDue(45, schedule, 1000)).toBe("an evaluation");
    expect(slowWorkDue(44, schedule, 1000)).toBeNull();
    expect(slowWorkDue(51, schedule, 1000)).toBeNull();
    // A save only: no evaluation without an evaluation split.
    expect(slowWorkDue(100, { ...schedule, evaluates: false }, 1000)).toBe("a checkpoint save");
    expect(slowWorkDue(50, { ...schedule, evaluates: false }, 1000)).toBeNull();
    // The end of the run: the final evaluation, the adapter written out.
    expect(slowWorkDue(992, schedule, 995)).toBe("the final evaluation and save");
    expect(slowWorkDue(992, schedule, null)).toBeNull();
  });

  it("allows the longer budget only when slow work is due", () => {
    const clock = clockOf([
      [1, 0],
      [2, 200],
    ]);
    expect(clock.verdict(2_201, policy)).toMatchObject({ stalled: true, budgetMs: 2_000 });
    expect(clock.verdict(60_200, policy, "an evaluation")).toEqual({ stalled: false });
    expect(clock.verdict(60_201, policy, "an evaluation")).toEqual({
      stalled: true,
      sinceMs: 60_001,
      budgetMs: 60_000,
      medianStepMs: 200,
      step: 2,
      due: "an evaluation",
    });
  });
});

describe("the studio warns of a stalled trainer", () => {
  const FAILING = join(import.meta.dirname, "../fixtures/trainers/failing.py");
  const python = process.env.STUDIO_PYTHON || "python3";
  let studio: TestStudio;
  afterAll(async () => {
    await studio?.dispose();
  });

  it("says so once when the steps stop, and never for a healthy run", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "2",
      STUDIO_STALL_FACTOR: "10",
      STUDIO_STALL_MIN_SECONDS: "5",
      // The hang comes after the last step, when the final evaluation and save are due.
      STUDIO_STALL_SLOW_SECONDS: "7",
      STUDIO_CANCEL_GRACE_MS: "500",
    });
    await studio.start();
    const start = async (name: string, args: string[]) => {
      const task = await studio.client.task.create.mutate({
        name,
        model: "fixture",
        dataset: "sample",
        trainer: "command",
        command: [python, FAILING, ...args],
      });
      await studio.client.task.start.mutate({ id: task.id });
      return task.id;
    };
    const hung = await start("hangs", ["--steps", "20", "--step-ms", "100", "--fail", "hang"]);
    const healthy = await start("healthy", ["--steps", "40", "--step-ms", "100", "--fail", "none"]);

    const stalled = await waitFor(
      "the stall warning",
      async () =>
        (await studio.client.task.get.query({ id: hung })).events.find((e) => e.type === "stalled"),
      30_000,
      100,
    );
    // The median is measured from when the studio saw the steps (it looks about once a second),
    // so the allowance is the slow-work floor (7 s) or, on a busy machine, ten medians above it.
    expect(stalled.message).toMatch(
      /^no new step for \d+(\.\d)? s after step 20 \(median step time \d+(\.\d)? s; the watchdog allows \d+(\.\d)? s, with the final evaluation and save due\): the trainer may be hung$/,
    );
    const allowed = Number(/allows (\d+(?:\.\d)?) s/.exec(stalled.message)![1]);
    const median = Number(/median step time (\d+(?:\.\d)?) s/.exec(stalled.message)![1]);
    expect(allowed).toBeGreaterThanOrEqual(7);
    // Both figures are shown rounded to a tenth of a second.
    expect(Math.abs(allowed - Math.max(7, 10 * median))).toBeLessThanOrEqual(0.6);
    await waitFor(
      "the healthy run to complete",
      async () => (await studio.client.task.get.query({ id: healthy })).task.status === "completed",
      30_000,
      100,
    );
    const events = async (id: string) => (await studio.client.task.get.query({ id })).events;
    expect((await events(healthy)).filter((e) => e.type === "stalled")).toEqual([]);
    // One warning per stall, however long it lasts.
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await events(hung)).filter((e) => e.type === "stalled")).toHaveLength(1);
    await studio.client.task.cancel.mutate({ id: hung });
    await waitFor(
      "the cancel",
      async () => (await studio.client.task.get.query({ id: hung })).task.status === "cancelled",
      30_000,
      100,
    );
  }, 90_000);
});
