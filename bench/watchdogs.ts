// The stall watchdog, measured: how long after a trainer's steps stop it warns, beyond the
// allowance it computed (the allowance itself is the same-run baseline: the watchdog cannot warn
// sooner), on a trainer that reports 20 steps 100 ms apart and then hangs; and how many false
// alarms it gives on healthy runs of the shipped built-in trainer (its default sample, with
// evaluations and checkpoint saves) under the same tight settings.
//   npx tsx bench/watchdogs.ts [--trials 3] [--factor 10] [--min-seconds 2]

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../test/helpers/wait";
import { numberFlags } from "./lib/args";
import { benchStudio } from "./lib/bench-studio";
import { fmt, median, printTable } from "./lib/stats";

const flags = numberFlags({ trials: 3, factor: 10, "min-seconds": 2 });
const FAILING = join(import.meta.dirname, "../test/fixtures/trainers/failing.py");
const python = process.env.STUDIO_PYTHON || "python3";

const studio = await benchStudio({
  STUDIO_CONCURRENCY: "1",
  STUDIO_STALL_FACTOR: String(flags.factor),
  STUDIO_STALL_MIN_SECONDS: String(flags["min-seconds"]),
  STUDIO_CANCEL_GRACE_MS: "500",
});

async function run(name: string, trainer: "command" | "builtin", command?: string[]) {
  const task = await studio.client.task.create.mutate({
    name,
    model: trainer === "builtin" ? "builtin:tiny" : "fixture",
    dataset: "sample",
    trainer,
    ...(command ? { command } : {}),
  });
  await studio.client.task.start.mutate({ id: task.id });
  return task.id;
}

try {
  const beyond: number[] = [];
  const allowance: number[] = [];
  for (let i = 0; i < flags.trials; i++) {
    const id = await run(`hangs ${i}`, "command", [
      python,
      FAILING,
      "--steps",
      "20",
      "--step-ms",
      "100",
      "--fail",
      "hang",
    ]);
    const stalled = await waitFor(
      "the stall warning",
      async () =>
        (await studio.client.task.get.query({ id })).events.find((e) => e.type === "stalled"),
      120_000,
      50,
    );
    // When the trainer reported its last step (its own clock, in progress.jsonl).
    const lines = readFileSync(join(studio.home, "tasks", id, "progress.jsonl"), "utf8")
      .trim()
      .split("\n");
    const lastStepAt = JSON.parse(lines.at(-1)!).time * 1000;
    const budgetMs = (stalled.data as { budgetMs: number }).budgetMs;
    allowance.push(budgetMs);
    beyond.push(stalled.at.getTime() - lastStepAt - budgetMs);
    await studio.client.task.cancel.mutate({ id });
    await waitFor("the cancel", async () => {
      const s = (await studio.client.task.get.query({ id })).task.status;
      return s === "cancelled";
    });
  }

  let falseAlarms = 0;
  let steps = 0;
  for (let i = 0; i < flags.trials; i++) {
    const id = await run(`healthy ${i}`, "builtin");
    const done = await waitFor(
      "the built-in run",
      async () => {
        const d = await studio.client.task.get.query({ id });
        return d.task.status === "completed" ? d : null;
      },
      600_000,
      500,
    );
    falseAlarms += done.events.filter((e) => e.type === "stalled").length;
    steps += (done.task.progress as { step: number }).step;
  }

  printTable(`Stall watchdog (factor ${flags.factor}, at least ${flags["min-seconds"]} s)`, [
    {
      what: "steps stop → warning, beyond the allowance",
      median: `${fmt(median(beyond))} ms`,
      runs: beyond.map((v) => fmt(v)).join(", "),
      baseline: `the allowance: ${fmt(median(allowance))} ms`,
    },
    {
      what: `healthy built-in runs (${flags.trials} × shipped sample, ${steps} steps)`,
      median: `${falseAlarms} false alarms`,
      runs: "",
      baseline: "",
    },
  ]);
} finally {
  await studio.dispose();
}
