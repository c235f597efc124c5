import { expect, it } from "vitest";
import { runChaos } from "../bench/lib/chaos-run";

// Three cycles of the chaos run (bench/chaos.ts runs more): the studio is killed with SIGKILL
// or SIGTERM at seeded random moments while tasks start, run, pause and cancel, then started
// again; every invariant it checks must hold after every cycle and at the end.
it("keeps every invariant through three random studio kills", async () => {
  const seed = Number(process.env.CHAOS_SEED ?? 7);
  const report = await runChaos({ cycles: 3, seed, parallel: 3 });
  expect(report.violations, `seed ${seed}`).toEqual([]);
  expect(report.cycles).toBe(3);
  expect(report.linesChecked).toBeGreaterThan(0);
}, 90_000);
