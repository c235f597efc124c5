import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

// Three cycles of the chaos run, `npm run chaos` as a person runs it (more cycles there): the
// studio is killed with SIGKILL or SIGTERM at seeded random moments while tasks start, run, pause
// and cancel, then started again, and the first task trains with the built-in trainer. Every
// invariant it checks must hold after every cycle and at the end. Full-disk episodes are left
// to `npm run chaos` until the studio answers within its bound through every one of them.
it("keeps every invariant through three random studio kills", async () => {
  const seed = process.env.CHAOS_SEED ?? "7";
  const run = await promisify(execFile)(
    join(ROOT, "node_modules/.bin/tsx"),
    ["bench/chaos.ts", "--cycles", "3", "--seed", seed, "--parallel", "3", "--disk-full", "0"],
    { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
  ).catch((err: { stdout?: string; message: string }) => ({ stdout: err.stdout ?? err.message }));
  const report = JSON.parse(run.stdout.slice(run.stdout.lastIndexOf("\n{") + 1)) as {
    violations: string[];
    cycles: number;
    linesChecked: number;
  };
  expect(report.violations, `seed ${seed}`).toEqual([]);
  expect(report.cycles).toBe(3);
  expect(report.linesChecked).toBeGreaterThan(0);
}, 150_000);
