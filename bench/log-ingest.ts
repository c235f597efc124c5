// Log ingest throughput: lines/s through the monitor (AttemptMonitor: read training.log, parse
// HF dicts and tqdm bars, store cursor + progress + metrics in one database transaction,
// publish on the StudioBus) on a pre-written log. Baseline (same run, same file): a raw read
// (fs read + split on "\n").
//   npx tsx bench/log-ingest.ts [--lines 200000]
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../src/server/db/client";
import { attempts } from "../src/server/db/schema";
import { StudioBus } from "../src/server/events/bus";
import { AttemptMonitor } from "../src/server/supervisor/monitor";
import { initialProgress } from "../src/server/supervisor/progress-state";
import { insertTask, listMetrics } from "../src/server/tasks/repository";
import { hyperparametersSchema } from "../src/trainers/protocol";
import { numberFlags } from "./lib/args";
import { hfTrainingLog } from "./lib/hf-log";
import { fmt, printTable } from "./lib/stats";

const flags = numberFlags({ lines: 200_000 });
const dir = mkdtempSync(join(tmpdir(), "bench-ingest-"));

try {
  const taskDir = join(dir, "task");
  const logPath = join(taskDir, "training.log");
  mkdirSync(taskDir);
  writeFileSync(logPath, hfTrainingLog(flags.lines));
  const bytes = readFileSync(logPath).length;

  const rawStarted = performance.now();
  const rawLines = readFileSync(logPath, "utf8").split("\n").length - 1;
  const rawMs = performance.now() - rawStarted;

  const database = await openDatabase({ pgliteDir: join(dir, "pglite") });
  try {
    const task = await insertTask(
      database.db,
      {
        name: "ingest",
        model: "fixture",
        trainer: "command",
        datasetPath: join(dir, "sample.jsonl"),
        datasetFormat: "alpaca",
        hyperparameters: hyperparametersSchema.parse({}),
        command: ["true"],
      },
      join(dir, "tasks"),
    );
    const [attempt] = await database.db
      .insert(attempts)
      .values({ taskId: task.id, number: 1, host: "bench" })
      .returning();
    const bus = new StudioBus();
    let published = 0;
    bus.emitterForSubscriptions.on(`log:${task.id}`, (chunk: { lines: unknown[] }) => {
      published += chunk.lines.length;
    });
    let failure: unknown = null;
    const monitor = new AttemptMonitor(
      {
        taskId: task.id,
        attempt: 1,
        attemptRowId: attempt!.id,
        taskDir,
        logCursor: null,
        progressCursor: null,
        progress: initialProgress(),
      },
      database.db,
      bus,
      (err) => {
        failure = err;
      },
    );
    const monitorStarted = performance.now();
    await monitor.tick(); // reads chunk after chunk until nothing is new
    const monitorMs = performance.now() - monitorStarted;
    monitor.stop();
    if (failure) throw failure;
    if (published !== rawLines) throw new Error(`published ${published} of ${rawLines} lines`);
    const metrics = await listMetrics(database.db, task.id, 1_000_000);

    console.log(
      `${flags.lines} lines, ${fmt(bytes / 1024 / 1024)} MiB; monitor stored ${metrics.length} metric rows`,
    );
    const rate = (ms: number) => fmt((rawLines * 1000) / ms);
    printTable("log ingest: a pre-written HF-style training.log, read to the end", [
      {
        reader: "raw read + split (baseline)",
        ms: fmt(rawMs),
        "lines/s": rate(rawMs),
        "x raw": "1x",
      },
      {
        reader: "AttemptMonitor (parse, store, publish)",
        ms: fmt(monitorMs),
        "lines/s": rate(monitorMs),
        "x raw": `${fmt(monitorMs / rawMs)}x slower`,
      },
    ]);
  } finally {
    await database.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
