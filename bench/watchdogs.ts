// The watchdogs, measured. Stall: how long after a trainer's steps stop it warns, beyond the
// allowance it computed (the allowance itself is the same-run baseline: the watchdog cannot warn
// sooner), on a trainer that reports 20 steps of 1,000 100 ms apart and then hangs (no evaluation
// or save due: the longer budget for those is not what is measured). Divergence: how long
// after a trainer's first NaN loss, and after its first loss spike, the studio says "diverged"
// and stops it (the baseline: when the evidence was complete, one report for a NaN and
// STUDIO_DIVERGENCE_PATIENCE reports for a spike). And how many false alarms of either they give
// on healthy runs of the shipped built-in trainer (its default sample, with evaluations and
// checkpoint saves) under the same tight settings.
//   npx tsx bench/watchdogs.ts [--trials 3] [--factor 10] [--min-seconds 2]

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../test/helpers/wait";
import { numberFlags } from "./lib/args";
import { benchStudio } from "./lib/bench-studio";
import { fmt, median, printTable } from "./lib/stats";

const flags = numberFlags({ trials: 3, factor: 10, "min-seconds": 2 });
const FAILING = join(import.meta.dirname, "../test/fixtures/trainers/failing.py");
const DIVERGING = join(import.meta.dirname, "../test/fixtures/trainers/diverging.py");
const STEP_MS = 100;
const python = process.env.STUDIO_PYTHON || "python3";

const studio = await benchStudio({
  STUDIO_CONCURRENCY: "1",
  STUDIO_STALL_FACTOR: String(flags.factor),
  STUDIO_STALL_MIN_SECONDS: String(flags["min-seconds"]),
  STUDIO_CANCEL_GRACE_MS: "500",
  STUDIO_DIVERGENCE_ACTION: "stop",
});

/** The trainer's progress.jsonl events, with the times it wrote them. */
function progressOf(id: string): { event: string; step?: number; time: number }[] {
  return readFileSync(join(studio.home, "tasks", id, "progress.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
}

/** ms from the trainer's first bad report (and from the complete evidence) to "diverged". */
async function divergence(mode: "nan" | "spike", i: number) {
  const id = await run(`${mode} ${i}`, "command", [
    python,
    DIVERGING,
    "--steps",
    "40",
    "--step-ms",
    String(STEP_MS),
    "--bad-from",
    "20",
    "--mode",
    mode,
  ]);
  const said = await waitFor(
    "the divergence",
    async () =>
      (await studio.client.task.get.query({ id })).events.find((e) => e.type === "diverged"),
    120_000,
    50,
  );
  await waitFor("the stop", async () => {
    const s = (await studio.client.task.get.query({ id })).task.status;
    return s === "failed";
  });
  const bad = progressOf(id).filter((e) => e.event === "progress" && (e.step ?? 0) >= 20);
  const patience = mode === "nan" ? 1 : 3;
  return {
    fromFirst: said.at.getTime() - bad[0]!.time * 1000,
    fromEvidence: said.at.getTime() - bad[patience - 1]!.time * 1000,
  };
}

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
      "--total-steps",
      "1000",
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

  const nan: { fromFirst: number; fromEvidence: number }[] = [];
  const spike: { fromFirst: number; fromEvidence: number }[] = [];
  for (let i = 0; i < flags.trials; i++) {
    nan.push(await divergence("nan", i));
    spike.push(await divergence("spike", i));
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
    falseAlarms += done.events.filter((e) => ["stalled", "diverged"].includes(e.type)).length;
    steps += (done.task.progress as { step: number }).step;
  }

  printTable(`Watchdogs (stall: factor ${flags.factor}, at least ${flags["min-seconds"]} s)`, [
    {
      what: "steps stop → warning, beyond the allowance",
      median: `${fmt(median(beyond))} ms`,
      runs: beyond.map((v) => fmt(v)).join(", "),
      baseline: `the allowance: ${fmt(median(allowance))} ms`,
    },
    {
      what: "first NaN loss → diverged (stopped)",
      median: `${fmt(median(nan.map((d) => d.fromEvidence)))} ms`,
      runs: nan.map((d) => fmt(d.fromEvidence)).join(", "),
      baseline: `reports every ${STEP_MS} ms`,
    },
    {
      what: "loss spike → diverged, after the 3rd spiking report",
      median: `${fmt(median(spike.map((d) => d.fromEvidence)))} ms`,
      runs: spike.map((d) => fmt(d.fromEvidence)).join(", "),
      baseline: `from the 1st: ${fmt(median(spike.map((d) => d.fromFirst)))} ms`,
    },
    {
      what: `healthy built-in runs (${flags.trials} × shipped sample, ${steps} steps)`,
      median: `${falseAlarms} false alarms (stall or divergence)`,
      runs: "",
      baseline: "",
    },
  ]);
} finally {
  await studio.dispose();
}
