import { join, resolve } from "node:path";
import { TestStudio } from "../../test/helpers/studio";
import { waitFor } from "../../test/helpers/wait";

export const STAMP_TRAINER = join(import.meta.dirname, "../fixtures/stamp-trainer.mjs");
export const LINES_TRAINER = join(import.meta.dirname, "../../test/fixtures/trainers/lines.mjs");

/**
 * With BENCH_CPU_PROF=<folder>, the studio runs under `node --cpu-prof` (STUDIO_CPU_PROF_DIR) and
 * writes its profiles there when it stops, one file per thread, named with its pid:
 * `npx tsx bench/profile-top.ts <folder> --pid <studio pid>`.
 */
function profilingEnv(): Record<string, string> {
  const folder = process.env.BENCH_CPU_PROF;
  return folder ? { STUDIO_CPU_PROF_DIR: resolve(folder) } : {};
}

/** A studio on PGlite (or DATABASE_URL's PostgreSQL when BENCH_POSTGRES=1) that runs command trainers. */
export async function benchStudio(env: Record<string, string> = {}): Promise<TestStudio> {
  const studio = await TestStudio.create(
    process.env.BENCH_POSTGRES ? "postgres" : "pglite",
    {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CANCEL_GRACE_MS: "2000",
      ...profilingEnv(),
      ...env,
    },
    { firstStart: true },
  );
  await studio.start();
  if (process.env.BENCH_CPU_PROF) {
    console.log(
      `studio pid ${studio.pid()}: CPU profiles in ${resolve(process.env.BENCH_CPU_PROF)}`,
    );
  }
  return studio;
}

/** Creates and starts a task whose trainer is `argv`; returns its id once its trainer runs. */
export async function startCommandTask(
  studio: TestStudio,
  argv: string[],
  name = "bench",
): Promise<{ id: string; trainerPid: number; runnerPid: number }> {
  const task = await studio.client.task.create.mutate({
    name,
    model: "fixture",
    dataset: "sample",
    trainer: "command",
    command: argv,
  });
  await studio.client.task.start.mutate({ id: task.id });
  return { id: task.id, ...(await trainerOf(studio, task.id)) };
}

/** The trainer and runner pids of a task's latest attempt, once its handle is recorded. */
export async function trainerOf(studio: TestStudio, id: string, timeoutMs = 60_000) {
  return waitFor(
    `task ${id}'s trainer`,
    async () => {
      const detail = await studio.client.task.get.query({ id });
      const handle = detail.attempts.at(-1)?.handle as
        | { runner: { pid: number }; trainer: { pid: number } }
        | undefined;
      return handle ? { trainerPid: handle.trainer.pid, runnerPid: handle.runner.pid } : null;
    },
    timeoutMs,
  );
}

/** Kills the process groups of trainers a benchmark started, so none outlives it. */
export function killGroups(pids: number[]) {
  for (const pid of pids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
  }
}

export function baseUrl(studio: TestStudio): string {
  return `http://127.0.0.1:${studio.port}`;
}
