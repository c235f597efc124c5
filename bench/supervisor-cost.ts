// Supervisor cost: the studio's CPU time (utime + stime) per minute of wall clock while
// trainers run: quiet ones (print nothing) and chatty ones (100 lines/s each), and what the
// chatty ones cost above idle per 1,000 lines/s of output.
// Baseline (same run, same studio): the studio idle, with no trainer.
//   npx tsx bench/supervisor-cost.ts [--trainers 20] [--rate 100] [--seconds 20]
import type { TestStudio } from "../test/helpers/studio";
import { numberFlags } from "./lib/args";
import { benchStudio, killGroups, STAMP_TRAINER, trainerOf } from "./lib/bench-studio";
import { cpuMs, sleep } from "./lib/proc";
import { fmt, printTable } from "./lib/stats";
import { processesRunning } from "./lib/trainer-scan";

const flags = numberFlags({ trainers: 20, rate: 100, seconds: 20 });
/** Lets launches, first reads and subscriptions settle before the sample starts. */
const SETTLE_MS = 3_000;
/** How long all trainers of a case may take to launch. */
const LAUNCH_BOUND_MS = 60_000;

/** CPU ms per minute of each group of pids (summed within a group), sampled together over `flags.seconds`. */
async function sample(groups: number[][]): Promise<number[]> {
  const total = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const before = groups.map(total);
  const startedAt = performance.now();
  await sleep(flags.seconds * 1000);
  const elapsed = performance.now() - startedAt;
  return groups.map((pids, i) => ((total(pids) - before[i]!) * 60_000) / elapsed);
}

/**
 * Starts `flags.trainers` stamp trainers at `rate` (all asked for at once, then waited for),
 * samples, then kills them. Each trainer also ends by itself, so none outlives a benchmark
 * that was interrupted.
 */
async function withTrainers(studio: TestStudio, rate: number) {
  const lifetime = 4 * flags.seconds + 900;
  const ids: string[] = [];
  const trainers: { trainerPid: number; runnerPid: number }[] = [];
  try {
    const launchStarted = Date.now();
    for (let i = 0; i < flags.trainers; i++) {
      const task = await studio.client.task.create.mutate({
        name: `rate-${rate}-${i}`,
        model: "fixture",
        dataset: "sample",
        trainer: "command",
        command: [
          process.execPath,
          STAMP_TRAINER,
          "--rate",
          String(rate),
          "--seconds",
          String(lifetime),
        ],
      });
      await studio.client.task.start.mutate({ id: task.id });
      ids.push(task.id);
    }
    // A studio too busy to launch them all within the bound is a finding: sample what runs.
    for (const id of ids) {
      const left = launchStarted + LAUNCH_BOUND_MS - Date.now();
      const trainer = await trainerOf(studio, id, Math.max(left, 0)).catch(() => null);
      if (!trainer) break;
      trainers.push(trainer);
    }
    const launchMs = Date.now() - launchStarted;
    for (const id of ids.slice(trainers.length)) {
      await studio.client.task.cancel.mutate({ id }).catch(() => {});
    }
    console.log(
      `${trainers.length} of ${flags.trainers} trainers at ${rate} lines/s running after ${launchMs} ms`,
    );
    await sleep(SETTLE_MS);
    const [studioCpu, runnersCpu] = await sample([
      [studio.pid()!],
      trainers.map((t) => t.runnerPid),
    ]);
    return { studioCpu: studioCpu!, runnersCpu: runnersCpu!, launchMs, running: trainers.length };
  } finally {
    killGroups(trainers.map((t) => t.trainerPid));
    // The studio records the deaths; let it finish before the next sample.
    await sleep(SETTLE_MS);
  }
}

const studio = await benchStudio({ STUDIO_CONCURRENCY: String(flags.trainers) });
try {
  await sleep(SETTLE_MS);
  const [idle] = (await sample([[studio.pid()!]])) as [number];
  const quiet = await withTrainers(studio, 0);
  const chatty = await withTrainers(studio, flags.rate);
  const row = (
    what: string,
    studioCpu: number,
    runnersCpu: number | string,
    launchMs = 0,
    linesPerSecond = 0,
  ) => ({
    case: what,
    "studio CPU ms/min": fmt(studioCpu),
    "% of one core": fmt(studioCpu / 600),
    "x idle": `${fmt(studioCpu / idle)}x`,
    // Above idle, per 1,000 lines/s of output: what the log path costs, whatever ran.
    "% of a core per 1,000 lines/s": linesPerSecond
      ? fmt((studioCpu - idle) / 600 / (linesPerSecond / 1000))
      : "-",
    "runners CPU ms/min (all)": typeof runnersCpu === "number" ? fmt(runnersCpu) : runnersCpu,
    "launch all ms": launchMs ? fmt(launchMs) : "-",
  });
  printTable(`supervisor cost: studio CPU time, sampled ${flags.seconds} s, scaled to a minute`, [
    row("idle, no trainer (baseline)", idle, "-"),
    row(`${quiet.running} quiet trainers`, quiet.studioCpu, quiet.runnersCpu, quiet.launchMs),
    row(
      `${chatty.running} trainers x ${flags.rate} lines/s`,
      chatty.studioCpu,
      chatty.runnersCpu,
      chatty.launchMs,
      chatty.running * flags.rate,
    ),
  ]);
} finally {
  // Any trainer launched after its task was given up on.
  killGroups(
    processesRunning(STAMP_TRAINER)
      .filter((p) => p.cwd.startsWith(studio.home))
      .map((p) => p.pid),
  );
  await studio.dispose();
}
process.exit(0);
