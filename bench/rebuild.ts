// Rebuild from the task folders: `--tasks` folders of finished tasks, each as a run leaves it
// (task.json, config.json, runner.json, exit.json, a training.log of `--lines` lines, a
// progress.jsonl with an event every 5 steps), and a database that lost them all.
//   1. the rebuild itself (read, judge, insert one transaction per task) into an empty PGlite,
//      against a baseline in the same run: only reading what it reads of the folders;
//   2. `studio start` until its boot is over on that home with an empty database (rebuild, then
//      reconciliation finalizes every task and reads its log and progress again for metrics),
//      against `studio start` on the same home with every task already in the database.
//   npm run bench:rebuild [-- --tasks 1000 --lines 300 --trials 3]
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { count } from "drizzle-orm";
import { readBootId } from "../src/platform/identity";
import type { ExitRecord, RunnerRecord } from "../src/runner/records";
import { openDatabase } from "../src/server/db/client";
import { taskMetrics, tasks } from "../src/server/db/schema";
import { readTaskFolder } from "../src/server/recovery/read-folder";
import { rebuildFromFolders } from "../src/server/recovery/rebuild";
import { newTaskId } from "../src/server/tasks/repository";
import { TASK_RECORD_VERSION, type TaskRecord } from "../src/server/tasks/task-record";
import { hyperparametersSchema, type TaskConfig } from "../src/trainers/protocol";
import { TestStudio } from "../test/helpers/studio";
import { numberFlags } from "./lib/args";
import { hfTrainingLog } from "./lib/hf-log";
import { fmt, median, printTable } from "./lib/stats";

const flags = numberFlags({ tasks: 1000, lines: 300, trials: 3 });
const hyperparameters = hyperparametersSchema.parse({});
const bootId = readBootId();

/** A pid no process has now: the attempt's processes are gone, as after a finished run. */
function deadPid(): number {
  for (let pid = 4_000_000; ; pid--) {
    try {
      readFileSync(`/proc/${pid}/stat`);
    } catch {
      return pid;
    }
  }
}
const gonePid = deadPid();

/** One finished task's folder, written with the record types the studio and runner write. */
function writeFolder(tasksDir: string, id: string, i: number) {
  const dir = join(tasksDir, id);
  mkdirSync(join(dir, "checkpoints"), { recursive: true });
  const created = new Date(Date.UTC(2030, 0, 1) + i * 60_000);
  const started = new Date(created.getTime() + 1_000);
  const ended = new Date(started.getTime() + 30 * 60_000);
  const task: TaskRecord = {
    version: TASK_RECORD_VERSION,
    id,
    name: `bench ${i}`,
    model: "builtin:tiny",
    trainer: "builtin",
    mode: "lora",
    dataset: {
      path: join(tasksDir, "..", "datasets", "pinned", "x", "sample.jsonl"),
      format: "alpaca",
    },
    hyperparameters,
    command: null,
    gpusRequested: 0,
    limits: {},
    evaluationSet: null,
    createdAt: created.toISOString(),
  };
  const config: TaskConfig = {
    taskId: id,
    attempt: 1,
    trainer: "builtin",
    model: "builtin:tiny",
    mode: "lora",
    dataset: task.dataset,
    taskDir: dir,
    hyperparameters,
    resumeFrom: null,
    gpus: [],
    command: null,
  };
  const runner: RunnerRecord = {
    version: 1,
    attempt: 1,
    bootId,
    runner: { pid: gonePid, startTime: "1" },
    trainer: { pid: gonePid - 1, startTime: "2" },
    startedAt: started.toISOString(),
  };
  const exit: ExitRecord = {
    version: 1,
    attempt: 1,
    exitCode: 0,
    signal: null,
    startedAt: started.toISOString(),
    endedAt: ended.toISOString(),
    trainerPid: gonePid - 1,
    runnerPid: gonePid,
  };
  writeFileSync(join(dir, "task.json"), `${JSON.stringify(task)}\n`);
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(join(dir, "runner.json"), `${JSON.stringify(runner)}\n`);
  writeFileSync(join(dir, "exit.json"), `${JSON.stringify(exit)}\n`);
  writeFileSync(join(dir, "training.log"), hfTrainingLog(flags.lines));
  const steps = flags.lines;
  const events: unknown[] = [{ event: "started", total_epochs: 3, total_steps: steps }];
  for (let step = 5; step <= steps; step += 5) {
    events.push({
      event: "progress",
      epoch: (3 * step) / steps,
      total_epochs: 3,
      step,
      total_steps: steps,
      loss: 2 / (1 + step / 100),
      learning_rate: 0.002,
    });
  }
  events.push({ event: "completed", step: steps, train_loss: 1.1 });
  writeFileSync(
    join(dir, "progress.jsonl"),
    `${events.map((e) => JSON.stringify(e)).join("\n")}\n`,
  );
}

function writeFolders(tasksDir: string): string[] {
  mkdirSync(tasksDir, { recursive: true });
  const ids = Array.from({ length: flags.tasks }, () => newTaskId());
  for (const [i, id] of ids.entries()) writeFolder(tasksDir, id, i);
  return ids;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** 1: the rebuild in this process, into an empty embedded database, against reading alone. */
async function rebuildInProcess() {
  const dir = mkdtempSync(join(tmpdir(), "bench-rebuild-"));
  try {
    const home = join(dir, "home");
    writeFolders(join(home, "tasks"));
    const root = join(home, "tasks");
    const database = await openDatabase({ pgliteDir: join(dir, "pglite") });
    const readMs: number[] = [];
    const rebuildMs: number[] = [];
    try {
      for (let trial = 0; trial < flags.trials; trial++) {
        readMs.push(
          await timed(async () => {
            const names = readdirSync(root);
            for (let i = 0; i < names.length; i += 32) {
              await Promise.all(names.slice(i, i + 32).map((n) => readTaskFolder(root, n)));
            }
          }),
        );
        await database.db.delete(tasks);
        let rebuilt = 0;
        rebuildMs.push(
          await timed(async () => {
            rebuilt = (await rebuildFromFolders(database.db, home)).rebuilt.length;
          }),
        );
        if (rebuilt !== flags.tasks) throw new Error(`rebuilt ${rebuilt} of ${flags.tasks}`);
      }
    } finally {
      await database.close();
    }
    return { readMs, rebuildMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `studio start` until its boot is over (the studio answers before; see bench:boot). */
async function startUntilBooted(studio: TestStudio): Promise<number> {
  const begun = performance.now();
  await studio.cli("start");
  await studio.booted();
  return performance.now() - begun;
}

/** 2: `studio start` on the home, its database emptied, against a start with every task in it. */
async function studioStarts() {
  const studio = await TestStudio.create(
    process.env.BENCH_POSTGRES ? "postgres" : "pglite",
    {},
    {
      firstStart: true,
    },
  );
  try {
    await studio.start(); // creates and migrates the database, so the timed starts do not
    await studio.stop();
    writeFolders(join(studio.home, "tasks"));
    const rebuildStarts: number[] = [];
    const keptStarts: number[] = [];
    let summary = "";
    let metricRows = 0;
    for (let trial = 0; trial < flags.trials; trial++) {
      await studio.withDatabase((db) => db.delete(tasks));
      rebuildStarts.push(await startUntilBooted(studio));
      const { counts } = await studio.client.studio.info.query();
      if (counts?.completed !== flags.tasks) {
        throw new Error(`after the rebuild: ${JSON.stringify(counts)}`);
      }
      summary = studio
        .log()
        .split("\n")
        .filter((l) => l.includes("rebuild from task folders") || l.includes("boot reconciliation"))
        .slice(-2)
        .map((l) => l.slice(25))
        .join("; ");
      await studio.stop();
      metricRows = await studio.withDatabase(async (db) => {
        const [row] = await db.select({ n: count() }).from(taskMetrics);
        return row?.n ?? 0;
      });
      keptStarts.push(await startUntilBooted(studio));
      await studio.stop();
    }
    return { rebuildStarts, keptStarts, summary, metricRows };
  } finally {
    await studio.dispose();
  }
}

const inProcess = await rebuildInProcess();
const starts = await studioStarts();
console.log(
  `${flags.tasks} task folders, ${flags.lines} log lines and ${Math.floor(flags.lines / 5)} progress events each`,
);
console.log(`last rebuild start: ${starts.summary}; ${starts.metricRows} metric rows restored`);
const row = (what: string, values: number[], baseline: number[]) => ({
  what,
  "ms median": fmt(median(values)),
  "ms max": fmt(Math.max(...values)),
  "x baseline": `${fmt(median(values) / median(baseline))}x`,
});
printTable(`rebuild into an empty embedded database (median of ${flags.trials})`, [
  row("read the folders' records only (baseline)", inProcess.readMs, inProcess.readMs),
  row("rebuild: read, judge, insert", inProcess.rebuildMs, inProcess.readMs),
]);
printTable(`studio start → boot over (median of ${flags.trials})`, [
  row("every task in the database (baseline)", starts.keptStarts, starts.keptStarts),
  row("database lost: rebuild + reconcile + metrics", starts.rebuildStarts, starts.keptStarts),
]);
process.exit(0);
