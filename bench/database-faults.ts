// Database faults, PostgreSQL only (DATABASE_URL): how long supervision is missing after the
// supervising studio is SIGKILLed while a standby studio runs (until the standby supervises and
// has adopted the running trainer), against the same-run baseline of restarting the killed
// studio by hand (`studio start` until it supervises); and how long a task whose trainer exited
// during a database outage takes to complete once the database is back, against the same exit
// with no outage.
//   DATABASE_URL=postgres://… npx tsx bench/database-faults.ts [--trials 3]

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import type { TestStudio } from "../test/helpers/studio";
import { waitFor } from "../test/helpers/wait";
import { numberFlags } from "./lib/args";
import { benchStudio, killGroups, LINES_TRAINER, startCommandTask } from "./lib/bench-studio";
import { sleep, wallMs } from "./lib/proc";
import { fmt, median, printTable } from "./lib/stats";

if (!process.env.DATABASE_URL) {
  console.error("bench/database-faults.ts needs PostgreSQL: set DATABASE_URL");
  process.exit(2);
}
const flags = numberFlags({ trials: 3 });
process.env.BENCH_POSTGRES = "1";
const trainers: number[] = [];

const first = await benchStudio();
const url = first.env.DATABASE_URL!;
const database = new URL(url).pathname.slice(1);
// From the database DATABASE_URL names: one cannot refuse connections to the database one is in.
const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
const second = await benchStudio({ DATABASE_URL: url });

const supervises = async (studio: TestStudio) =>
  (await studio.client.studio.info.query().catch(() => ({ readOnly: "down" }))).readOnly === null;

async function untilSupervising(studio: TestStudio) {
  await waitFor("supervision", () => supervises(studio), 60_000, 10);
}

async function lines(studio: TestStudio, until: string) {
  const task = await startCommandTask(studio, [
    process.execPath,
    LINES_TRAINER,
    "--task-dir",
    ".",
    "--lines",
    "3",
    "--interval-ms",
    "20",
    "--until",
    until,
  ]);
  trainers.push(task.trainerPid);
  return task;
}

async function completed(studio: TestStudio, id: string) {
  await waitFor(
    "completion",
    async () => (await studio.client.task.get.query({ id })).task.status === "completed",
    60_000,
    10,
  );
  return wallMs();
}

try {
  const takeover: number[] = [];
  const restart: number[] = [];
  let supervisor = first;
  const standby = second;
  const until = join(first.home, "bench.until");
  const running = await lines(supervisor, until);
  for (let i = 0; i < flags.trials; i++) {
    await untilSupervising(supervisor);
    await supervisor.kill("SIGKILL");
    const killedAt = wallMs();
    await untilSupervising(standby);
    await waitFor(
      "the adoption event",
      async () =>
        (await standby.client.task.get.query({ id: running.id })).events.filter(
          (e) => e.type === "recovered",
        ).length > i,
      60_000,
      10,
    );
    takeover.push(wallMs() - killedAt);
    // Baseline: the killed studio started again by hand on its own, with no standby running.
    await standby.kill("SIGKILL");
    const startedAt = wallMs();
    await supervisor.start();
    await untilSupervising(supervisor);
    restart.push(wallMs() - startedAt);
    await standby.start();
  }
  writeFileSync(until, "");
  await completed(supervisor, running.id);

  const afterOutage: number[] = [];
  const noOutage: number[] = [];
  for (let i = 0; i < flags.trials; i++) {
    const calm = join(supervisor.home, `calm-${i}.until`);
    const a = await lines(supervisor, calm);
    await sleep(300);
    const exitedAt = wallMs();
    writeFileSync(calm, "");
    noOutage.push((await completed(supervisor, a.id)) - exitedAt);

    const stormy = join(supervisor.home, `outage-${i}.until`);
    const b = await lines(supervisor, stormy);
    await sleep(300);
    await admin.unsafe(`alter database "${database}" with allow_connections false`);
    await admin`select pg_terminate_backend(pid) from pg_stat_activity
      where datname = ${database} and pid <> pg_backend_pid()`;
    writeFileSync(stormy, "");
    await sleep(5_000);
    await admin.unsafe(`alter database "${database}" with allow_connections true`);
    const backAt = wallMs();
    // The outage may have moved supervision to the other studio: whichever supervises ends it.
    const ender = await waitFor(
      "a supervisor",
      async () => ((await supervises(first)) ? first : (await supervises(second)) ? second : null),
      60_000,
      10,
    );
    afterOutage.push((await completed(ender, b.id)) - backAt);
    supervisor = ender;
  }

  printTable("Database faults (PostgreSQL)", [
    {
      what: "supervisor SIGKILLed → standby supervises, trainer adopted",
      median: `${fmt(median(takeover))} ms`,
      runs: takeover.map((v) => fmt(v)).join(", "),
      baseline: `restart by hand → supervising: ${fmt(median(restart))} ms`,
    },
    {
      what: "database back after a 5-s outage → task completed (trainer exited during it)",
      median: `${fmt(median(afterOutage))} ms`,
      runs: afterOutage.map((v) => fmt(v)).join(", "),
      baseline: `trainer exit → completed, no outage: ${fmt(median(noOutage))} ms`,
    },
  ]);
} finally {
  killGroups(trainers);
  await admin.unsafe(`alter database "${database}" with allow_connections true`).catch(() => {});
  await admin.end();
  await second.dispose().catch(() => {});
  await first.dispose().catch(() => {});
}
