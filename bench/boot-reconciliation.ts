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

interface Start {
  /** `studio start` until the studio answers, as the CLI reports it. */
  answers: number;
  /** From the same moment until the first task.list answers (the database serves requests). */
  lists: number;
  /** Until its boot (rebuild, reconciliation) is over: every running trainer followed. */
  booted: number;
}

/** Stops and starts the studio `trials` times; each start's times (ms). */
async function timeStarts(studio: TestStudio, check: () => Promise<void>): Promise<Start[]> {
  const starts: Start[] = [];
  for (let i = 0; i < flags.trials; i++) {
    await studio.stop();
    const begun = Date.now();
    const { startupMs } = await studio.cliJson<{ startupMs: number }>("start");
    await studio.client.task.list.query({ limit: 1 });
    const lists = Date.now() - begun;
    await studio.booted();
    starts.push({ answers: startupMs, lists, booted: Date.now() - begun });
    await check();
  }
  return starts;
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
const row = (database: string, starts: Start[]) => ({
  database,
  "answers ms": fmt(median(starts.map((s) => s.answers))),
  "answers max": fmt(Math.max(...starts.map((s) => s.answers))),
  "x baseline": `${fmt(median(starts.map((s) => s.answers)) / median(empty.map((s) => s.answers)))}x`,
  "first task.list ms": fmt(median(starts.map((s) => s.lists))),
  "boot over ms": fmt(median(starts.map((s) => s.booted))),
});
printTable(`boot: studio start → answers (median of ${flags.trials} starts)`, [
  row("empty (baseline)", empty),
  row(`${flags.finished} finished + ${flags.running} running`, full.startupMs),
]);
process.exit(0);
