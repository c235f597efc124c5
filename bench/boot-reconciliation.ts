import { TestStudio } from "../test/helpers/studio";
import { numberFlags } from "./lib/args";
import { killGroups, LINES_TRAINER, trainerOf } from "./lib/bench-studio";
import { sleep } from "./lib/proc";
import { seedFinishedTasks } from "./lib/seed-finished";
import { fmt, median, printTable } from "./lib/stats";
import { processesRunning } from "./lib/trainer-scan";

const flags = numberFlags({ finished: 1000, running: 20, trials: 3 });

function newStudio(concurrency: number) {
  return TestStudio.create(
    process.env.BENCH_POSTGRES ? "postgres" : "pglite",
    {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: String(concurrency),
    },
    { firstStart: true },
  );
}

/** Stops and starts the studio `trials` times; the start times (ms) as the CLI reports them. */
async function timeStarts(studio: TestStudio, check: () => Promise<void>) {
  const startupMs: number[] = [];
  for (let i = 0; i < flags.trials; i++) {
    await studio.stop();
    const { startupMs: ms } = await studio.cliJson<{ startupMs: number }>("start");
    startupMs.push(ms);
    await check();
  }
  return startupMs;
}

async function emptyDatabase() {
  const studio = await newStudio(1);
  try {
    await studio.start(); // creates and migrates the database, so the timed starts do not
    return await timeStarts(studio, async () => {});
  } finally {
    await studio.dispose();
  }
}

async function loaded() {
  const studio = await newStudio(flags.running);
  const seedStarted = Date.now();
  await studio.withDatabase((db) => seedFinishedTasks(db, flags.finished));
  const seedMs = Date.now() - seedStarted;
  const trainers: number[] = [];
  try {
    await studio.start();
    const ids: string[] = [];
    for (let i = 0; i < flags.running; i++) {
      const task = await studio.client.task.create.mutate({
        name: `running-${i}`,
        model: "fixture",
        dataset: "sample",
        trainer: "command",
        command: [process.execPath, LINES_TRAINER, "--lines", "100000", "--interval-ms", "1000"],
      });
      await studio.client.task.start.mutate({ id: task.id });
      ids.push(task.id);
    }
    for (const id of ids) trainers.push((await trainerOf(studio, id)).trainerPid);
    const startupMs = await timeStarts(studio, async () => {
      const { counts } = await studio.client.studio.info.query();
      if (counts?.training !== flags.running || counts?.completed !== flags.finished) {
        throw new Error(`after the restart: ${JSON.stringify(counts)}`);
      }
    });
    const summary = studio
      .log()
      .split("\n")
      .filter((l) => l.includes("boot reconciliation"))
      .at(-1);
    return { startupMs, seedMs, summary };
  } finally {
    killGroups(trainers);
    await studio.dispose();
    await sleep(500);
    const left = processesRunning(LINES_TRAINER).filter((p) => p.cwd.startsWith(studio.home));
    if (left.length) console.error(`still running after cleanup: ${left.map((p) => p.pid)}`);
  }
}

const empty = await emptyDatabase();
const full = await loaded();
console.log(`seeded ${flags.finished} finished tasks in ${full.seedMs} ms; ${full.summary}`);
printTable(`boot: studio start → serving (median of ${flags.trials} starts)`, [
  {
    database: "empty (baseline)",
    "startupMs median": fmt(median(empty)),
    "startupMs max": fmt(Math.max(...empty)),
    "x baseline": "1x",
  },
  {
    database: `${flags.finished} finished + ${flags.running} running`,
    "startupMs median": fmt(median(full.startupMs)),
    "startupMs max": fmt(Math.max(...full.startupMs)),
    "x baseline": `${fmt(median(full.startupMs) / median(empty))}x`,
  },
]);
process.exit(0);
