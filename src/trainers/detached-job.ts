import { spawn } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeJsonAtomic } from "../platform/atomic-write";
import { type ProcessIdentity, readIdentity } from "../platform/identity";
import { DIST_DIR } from "../platform/package-root";
import { lowerOwnPriority } from "../platform/priority";
import { inheritedEnv } from "./launch";

/**
 * The protocol every detached job of the studio follows (the exporter, the evaluator): the studio
 * writes a record in the task folder asking for the work and starts the job's program detached,
 * with its output in a log, so the work survives a studio restart. The program then:
 *
 * 1. reads the record named by `--task-dir <dir> --<id option> <id>`, and stands down when it no
 *    longer asks for this run (another job took it, it was superseded or ended);
 * 2. claims it by writing its own identity (boot id, pid, start time) into it, having first
 *    lowered its CPU priority when the job asks: from then on the studio believes "running"
 *    only while that process lives;
 * 3. runs the work, whose programs' output goes on to the log and whose last lines are kept for
 *    the reason of a failure; SIGTERM or SIGINT is passed on to the program running and the job
 *    fails, saying it was stopped;
 * 4. records how it ended: the fields the work returns, or "failed" with the reason.
 */

/** The fields of a job record this protocol reads and writes. */
export interface JobRecord {
  state: string;
  process: ProcessIdentity | null;
  finishedAt: string | null;
  reason: string | null;
}

/** A failure whose message is already the reason a person reads. */
export class JobFailure extends Error {}

/** How a program the job ran ended, with its last lines (stdout and stderr) and stdout's last line. */
export interface ProgramOutcome {
  code: number | null;
  signal: string | null;
  lines: string[];
  lastStdoutLine: string | null;
}

export interface ClaimedJob<R extends JobRecord> {
  taskDir: string;
  id: string;
  /** The record as claimed (this process's identity in it). */
  record: R;
  /** The signal that asked the job to stop, or null. */
  stopped(): string | null;
  /** Runs a program; its output goes on to the job's log. A stop sends it SIGTERM. */
  run(command: {
    file: string;
    args: string[];
    env?: Record<string, string | undefined>;
  }): Promise<ProgramOutcome>;
}

export interface DetachedJob<R extends JobRecord> {
  /** The program's name, for its usage line ("evaluator"). */
  program: string;
  /** What a person calls one run, for its log lines ("evaluation"). */
  noun: string;
  /** The option naming the record ("eval-id"). */
  idOption: string;
  recordPath(taskDir: string, id: string): string;
  parseRecord(text: string): R;
  /** Why this process must not run the record (already claimed, ended, superseded), or null. */
  standDown(record: R, id: string): string | null;
  /**
   * The CPU priority (niceness) the job lowers itself to before it claims the record, or null to
   * keep its own: a claimed record then always names a process that already yields.
   */
  niceness?(record: R): number | null;
  /**
   * The work, once claimed. Resolves with the fields its end records (state included), or null
   * when there is nothing to record (superseded meanwhile); throws when it fails.
   */
  work(job: ClaimedJob<R>): Promise<Partial<R> | null>;
  /** A failure that is not a JobFailure, in a person's words; the error's message by default. */
  reasonOf?(err: unknown, taskDir: string): Promise<string>;
}

/**
 * The studio's side: starts the job's program (dist/<program>.js) for a record already written,
 * in a session of its own with its output in the log, and forgets it. A program that cannot be
 * started is recorded as the run's failure; returns that reason, or null once it started.
 */
export async function startDetachedJob<R extends JobRecord & { id: string }>(start: {
  /** "exporter", "evaluator". */
  program: string;
  idOption: string;
  taskDir: string;
  record: R;
  recordPath: string;
  log: { path: string; append: boolean };
  baseEnv: Record<string, string | undefined>;
}): Promise<string | null> {
  const env: Record<string, string> = {
    ...inheritedEnv(start.baseEnv),
    PYTHONUNBUFFERED: "1",
    TOKENIZERS_PARALLELISM: "false",
  };
  const log = await open(start.log.path, start.log.append ? "a" : "w");
  try {
    const child = spawn(
      process.execPath,
      [
        join(DIST_DIR, `${start.program}.js`),
        "--task-dir",
        start.taskDir,
        `--${start.idOption}`,
        start.record.id,
      ],
      { detached: true, stdio: ["ignore", log.fd, log.fd], env: env as NodeJS.ProcessEnv },
    );
    const failure = await new Promise<Error | null>((started) => {
      child.once("spawn", () => started(null));
      child.once("error", started);
    });
    if (failure) {
      const reason = `the ${start.program} could not be started: ${failure.message}`;
      writeJsonAtomic(start.recordPath, {
        ...start.record,
        state: "failed",
        finishedAt: new Date().toISOString(),
        reason,
      });
      return reason;
    }
    child.unref();
    return null;
  } finally {
    await log.close();
  }
}

/** The most lines of a program's output kept for the reason of a failure. */
export const KEPT_LINES = 40;

/** Runs the job as this process's whole life: exits 0 when it succeeded or stood down, else 1. */
export function runDetachedJob<R extends JobRecord>(job: DetachedJob<R>, argv: string[]): void {
  carryOut(job, argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(`${job.program}: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}

async function carryOut<R extends JobRecord>(job: DetachedJob<R>, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { "task-dir": { type: "string" }, [job.idOption]: { type: "string" } },
  });
  const dirArg = values["task-dir"];
  const id = values[job.idOption];
  if (typeof dirArg !== "string" || typeof id !== "string") {
    throw new Error(`usage: ${job.program} --task-dir <dir> --${job.idOption} <id>`);
  }
  const taskDir = resolve(dirArg);
  const recordPath = job.recordPath(taskDir, id);
  const requested = job.parseRecord(await readFile(recordPath, "utf8"));
  const why = job.standDown(requested, id);
  if (why !== null) {
    console.log(`${job.noun} ${id}: ${why}; nothing to do`);
    return 0;
  }
  const niceness = job.niceness?.(requested) ?? null;
  if (niceness !== null) {
    const { autogroup } = lowerOwnPriority(niceness);
    console.log(
      `${job.noun} ${id}: at niceness ${niceness}${autogroup ? " (its session's scheduling group too)" : ""}`,
    );
  }
  const me = readIdentity(process.pid);
  if (!me) throw new Error("cannot read this process's own identity from /proc");
  const record: R = { ...requested, process: me };
  writeJsonAtomic(recordPath, record);

  let stopped: string | null = null;
  let running: ReturnType<typeof spawn> | null = null;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      stopped = signal;
      running?.kill("SIGTERM");
    });
  }
  const claimed: ClaimedJob<R> = {
    taskDir,
    id,
    record,
    stopped: () => stopped,
    run: async (command) => {
      const child = spawn(command.file, command.args, {
        stdio: ["ignore", "pipe", "pipe"],
        env: (command.env ?? process.env) as NodeJS.ProcessEnv,
      });
      running = child;
      try {
        return await follow(child);
      } finally {
        running = null;
      }
    },
  };
  const end = (fields: Partial<R>) =>
    writeJsonAtomic(recordPath, { ...record, ...fields, finishedAt: new Date().toISOString() });
  try {
    const fields = await job.work(claimed);
    if (fields) end(fields);
    return 0;
  } catch (err) {
    const reason =
      err instanceof JobFailure
        ? err.message
        : job.reasonOf
          ? await job.reasonOf(err, taskDir)
          : err instanceof Error
            ? err.message
            : String(err);
    console.error(`${job.noun} ${id} failed: ${reason}`);
    if (!(err instanceof JobFailure)) console.error(err);
    end({ state: "failed", reason } as Partial<R>);
    return 1;
  }
}

/** The program's output goes on to this process's own as it comes; its last lines are kept. */
function follow(child: ReturnType<typeof spawn>): Promise<ProgramOutcome> {
  const lines: string[] = [];
  // Only stdout's last line matters (a program's results): its tail is enough.
  let stdout = "";
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString("utf8").split("\n"));
    if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    keep(chunk);
    stdout = (stdout + chunk.toString("utf8")).slice(-4 * 1024 * 1024);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    process.stderr.write(chunk);
    keep(chunk);
  });
  const lastStdoutLine = () =>
    stdout
      .split("\n")
      .map((l) => l.trim())
      .findLast((l) => l !== "") ?? null;
  return new Promise((done) => {
    child.on("error", (err) =>
      done({ code: null, signal: null, lines: [...lines, String(err)], lastStdoutLine: null }),
    );
    child.on("close", (code, signal) =>
      done({ code, signal, lines, lastStdoutLine: lastStdoutLine() }),
    );
  });
}
