import { describe, expect, it } from "vitest";
import { type CheckpointEntry, planRetention } from "../../../src/trainers/checkpoints/retention";

const entry = (step: number, evalLoss: number | null = null): CheckpointEntry => ({
  name: `step-${step}`,
  step,
  evalLoss,
});

describe("planRetention", () => {
  it("keeps the last N and says why the others go", () => {
    const plan = planRetention([entry(100), entry(200), entry(300), entry(400)], "step-400", 3);
    expect(plan).toEqual({
      keep: ["step-200", "step-300", "step-400"],
      remove: [{ name: "step-100", why: "older than the last 3" }],
    });
  });

  it("keeps the best eval loss beside the last N", () => {
    const plan = planRetention(
      [entry(100, 2.0), entry(200, 1.5), entry(300, 1.7), entry(400, 1.8)],
      "step-400",
      2,
    );
    expect(plan).toEqual({
      keep: ["step-200", "step-300", "step-400"],
      remove: [
        { name: "step-100", why: "older than the last 2 and not the best eval loss (step-200)" },
      ],
    });
  });

  it("breaks a tie in eval loss for the later step", () => {
    const plan = planRetention([entry(100, 1.0), entry(200, 1.0), entry(300, 2.0)], "step-300", 1);
    expect(plan.keep).toEqual(["step-200", "step-300"]);
  });

  it("removes checkpoints past the new one's step: an earlier attempt went further", () => {
    const plan = planRetention([entry(100), entry(300, 0.1), entry(500)], "step-100", 3);
    expect(plan).toEqual({
      keep: ["step-100"],
      remove: [
        {
          name: "step-300",
          why: "step 300 is past this run's step 100: left by an earlier attempt that went further",
        },
        {
          name: "step-500",
          why: "step 500 is past this run's step 100: left by an earlier attempt that went further",
        },
      ],
    });
  });

  it("keeps the only checkpoint, and counts unknown eval losses as not measured", () => {
    expect(planRetention([entry(5)], "step-5", 1)).toEqual({ keep: ["step-5"], remove: [] });
    expect(planRetention([entry(5), entry(10)], "step-10", 1).keep).toEqual(["step-10"]);
  });

  it("refuses a newest that is not listed, and a keep count below one", () => {
    expect(() => planRetention([entry(5)], "step-6", 1)).toThrow(/not among/);
    expect(() => planRetention([entry(5)], "step-5", 0)).toThrow(/positive integer/);
    expect(() => planRetention([entry(5)], "step-5", 1.5)).toThrow(/positive integer/);
  });

  // Every folder of steps out of five, each with no eval loss or one of two values, every newest
  // among them, keeping 1 to 4: the plan is the rule, stated plainly.
  it("follows the rule in every combination", () => {
    const steps = [1, 2, 3, 4, 5];
    const losses = [null, 1, 2];
    const wrong: string[] = [];
    let cases = 0;
    const sameSet = (a: string[], b: string[]) =>
      a.length === b.length && [...a].sort().join() === [...b].sort().join();
    for (let mask = 1; mask < 1 << steps.length; mask++) {
      const chosen = steps.filter((_, i) => mask & (1 << i));
      for (let lossCode = 0; lossCode < losses.length ** chosen.length; lossCode++) {
        const entries = chosen.map((step, i) =>
          entry(step, losses[Math.floor(lossCode / losses.length ** i) % losses.length]!),
        );
        for (const newest of entries) {
          for (let keepLast = 1; keepLast <= 4; keepLast++) {
            cases++;
            const plan = planRetention(entries, newest.name, keepLast);
            const onPath = entries.filter((e) => e.step <= newest.step);
            const last = [...onPath].sort((a, b) => b.step - a.step).slice(0, keepLast);
            const measured = onPath.filter((e) => e.evalLoss !== null);
            const lowest = Math.min(...measured.map((e) => e.evalLoss!));
            const best = measured.filter((e) => e.evalLoss === lowest).at(-1);
            const expected = [...new Set([...last, ...(best ? [best] : [])].map((e) => e.name))];
            const all = [...plan.keep, ...plan.remove.map((r) => r.name)];
            const ok =
              sameSet(plan.keep, expected) &&
              plan.keep.includes(newest.name) &&
              sameSet(
                all,
                entries.map((e) => e.name),
              );
            if (!ok) wrong.push(JSON.stringify({ entries, newest: newest.name, keepLast, plan }));
          }
        }
      }
    }
    expect(wrong.slice(0, 3)).toEqual([]);
    expect(cases).toBe(15_360);
  });
});
