import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { DIST_DIR } from "../../platform/package-root";
import { RecordUnreadable, readExitRecord, readRunnerRecord } from "../../runner/record-schemas";
import { type ExitRecord, RECORD_VERSION } from "../../runner/records";
import {
  type AttemptState,
  type ControlSignal,
  type Executor,
  type FolderHint,
  HANDLE_VERSION,
  type LaunchSpec,
  type ProcessState,
  type SlurmAttemptHandle,
  slurmHandleSchema,
} from "./executor";
import { watchTaskFolder } from "./folder-watch";
import {
  BATCH_SCRIPT,
  batchScriptPath,
  jobName,
  type SlurmSubmitOptions,
  sbatchArgv,
  sbatchEnv,
} from "./slurm-script";
import {
  classifyFailure,
  endBeforeRunner,
  endWithoutRunner,
  parseSacct,
  parseSbatchParsable,
  parseSqueue,
  phaseOf,
  probeStateOf,
  SACCT_FIELDS,
  type SlurmJobRecord,
  SQUEUE_FORMAT,
} from "./slurm-state";

export interface SlurmExecutorOptions {
  /** slurm.conf for every Slurm command; the commands' default (/etc/slurm) when absent. */
  slurmConf?: string;
  partition?: string;
  /** sbatch --time for every job. */
  timeLimit?: string;
  /** Further sbatch options, e.g. ["--account=ml"]. */
  extraArgs?: string[];
  /** Node on the compute nodes; default this studio's. */
  nodePath?: string;
  /** The runner on a folder every node sees; default dist/runner.js of this install. */
  runnerPath?: string;
  /** How long one Slurm command may take before it counts as "cannot tell"; default 15 s. */
  commandTimeoutMs?: number;
  /** How long start() waits to see the job on a node (to name it); default 2 s. It may queue longer. */
  nodeWaitMs?: number;
}

const NODE_POLL_MS = 100;
/**
 * How long one answer about a job serves every caller. The studio checks an attempt on each
 * file event (many a second while a trainer logs); a cluster's controller must not be asked
 * that often. Signals always ask afresh.
 */
const ANSWER_TTL_MS = 500;

/** What the controller knows about a job right now. */
type JobQuery =
  | { kind: "known"; record: SlurmJobRecord }
  | { kind: "unknown" }
  /** The controller (or accounting) did not answer: say nothing about the job. */
  | { kind: "unreachable"; detail: string };

/** The job id, written next to the attempt's files so that readOutcome and recovery find it. */
export const SLURM_JOB_FILE = "slurm-job.json";

function handleFile(taskDir: string) {
  return join(taskDir, SLURM_JOB_FILE);
}

/**
 * Runs each attempt as a Slurm batch job whose only process is the same runner the local
 * executor uses, so runner.json, training.log and exit.json appear in the task folder (which
 * must be on a folder the compute nodes share). The studio keeps nothing but the job id:
 * squeue answers while the controller remembers the job (MinJobAge after it ends), sacct after.
 */
export class SlurmExecutor implements Executor<SlurmAttemptHandle> {
  private readonly submit: Omit<SlurmSubmitOptions, "gpus">;
  private readonly slurmConf: string | undefined;
  private readonly commandTimeoutMs: number;
  private readonly nodeWaitMs: number;
  private readonly answers = new Map<string, { at: number; answer: Promise<JobQuery> }>();

  constructor(options: SlurmExecutorOptions = {}) {
    this.slurmConf = options.slurmConf;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 15_000;
    this.nodeWaitMs = options.nodeWaitMs ?? 2_000;
    this.submit = {
      nodePath: options.nodePath ?? process.execPath,
      runnerPath: options.runnerPath ?? join(DIST_DIR, "runner.js"),
      partition: options.partition,
      timeLimit: options.timeLimit,
      extraArgs: options.extraArgs,
    };
  }

  /** Submits the job and resolves with its id as soon as Slurm has accepted it (it may queue). */
  async start(spec: LaunchSpec): Promise<SlurmAttemptHandle> {
    const { taskDir, attempt } = spec;
    if (!existsSync(this.submit.runnerPath)) {
      throw new Error(`the runner is not built: ${this.submit.runnerPath} is missing`);
    }
    mkdirSync(taskDir, { recursive: true });
    writeFileSync(batchScriptPath(taskDir, attempt), BATCH_SCRIPT, { mode: 0o755 });
    const argv = sbatchArgv(spec, { ...this.submit, gpus: gpuCount(taskDir) });
    const result = await this.slurm("sbatch", argv, sbatchEnv(spec.command.env, this.slurmConf));
    if (result.code !== 0) {
      throw new Error(`sbatch refused the job: ${result.stderr.trim() || `exit ${result.code}`}`);
    }
    const { jobId, cluster } = parseSbatchParsable(result.stdout);
    const submitted: SlurmAttemptHandle = {
      kind: "slurm",
      version: HANDLE_VERSION,
      taskDir,
      attempt,
      jobId,
      cluster,
      node: null,
    };
    // Recorded at once, so that recovery finds the job whatever happens next.
    writeJsonAtomic(handleFile(taskDir), submitted);
    const node = await this.waitForNode(submitted);
    if (!node) return submitted;
    const handle = { ...submitted, node };
    writeJsonAtomic(handleFile(taskDir), handle);
    return handle;
  }

  /** The node the job runs on, if it gets one within nodeWaitMs; null while it queues. */
  private async waitForNode(handle: SlurmAttemptHandle): Promise<string | null> {
    const deadline = Date.now() + this.nodeWaitMs;
    for (;;) {
      const job = await this.query(handle, true);
      if (job.kind === "known" && job.record.node) return job.record.node;
      if (job.kind !== "known" || phaseOf(job.record.state) !== "active") return null;
      if (Date.now() + NODE_POLL_MS > deadline) return null;
      await sleep(NODE_POLL_MS);
    }
  }

  async probe(handle: SlurmAttemptHandle): Promise<AttemptState> {
    if (readExitRecord(handle.taskDir, handle.attempt)) return "exited";
    const job = await this.query(handle);
    // A controller that does not answer (restarting, overloaded) says nothing about the job.
    if (job.kind === "unreachable") return "running";
    const state = job.kind === "known" ? probeStateOf(job.record.state) : "gone";
    if (state !== "exited" && state !== "gone") return state;
    // The runner writes exit.json just before it exits; Slurm's own record covers a runner
    // that Slurm killed. Anything else ended without an outcome.
    if (await this.readOutcome(handle.taskDir, handle.attempt)) return "exited";
    return "gone";
  }

  /** Slurm knows the job, not its processes: both follow the job's state. */
  async inspect(
    handle: SlurmAttemptHandle,
  ): Promise<{ runner: ProcessState; trainer: ProcessState }> {
    const job = await this.query(handle);
    if (job.kind === "unreachable") throw new Error(`Slurm did not answer: ${job.detail}`);
    const phase = job.kind === "known" ? phaseOf(job.record.state) : "ended";
    const state: ProcessState =
      phase === "active"
        ? "alive"
        : phase === "paused"
          ? "stopped"
          : phase === "node-lost"
            ? "other-boot"
            : "gone";
    return { runner: state, trainer: state };
  }

  /**
   * SIGTERM: `scancel --full --signal=TERM`; SIGKILL: that with KILL, then `scancel` (the job
   * ends, Slurm kills what is left); SIGSTOP/SIGCONT: `scontrol suspend`/`resume` (operator or
   * SlurmUser only). Slurm delivers these to the batch step's process group, which the runner
   * shares with the trainer (--share-group) and which the runner outlives, except SIGKILL.
   * A job still queued has nothing to signal: SIGTERM and SIGKILL cancel it, SIGSTOP does
   * nothing (false). False when the job is no longer there to signal.
   */
  async signal(handle: SlurmAttemptHandle, signal: ControlSignal): Promise<boolean> {
    try {
      return await this.send(handle, signal);
    } finally {
      // What the job does now is news: the next probe asks Slurm.
      this.answers.delete(answerKey(handle));
    }
  }

  private async send(handle: SlurmAttemptHandle, signal: ControlSignal): Promise<boolean> {
    const job = await this.query(handle, true);
    if (job.kind === "unreachable") throw new Error(`Slurm did not answer: ${job.detail}`);
    if (job.kind === "unknown") return false;
    const phase = phaseOf(job.record.state);
    if (phase !== "active" && phase !== "paused") return false;
    if (signal === "SIGCONT" && phase !== "paused") return true; // nothing to wake
    if (job.record.state === "PENDING") {
      if (signal === "SIGSTOP") return false;
      if (signal !== "SIGCONT") return this.runOrGone("scancel", [handle.jobId]);
    }
    const [command, args] =
      signal === "SIGSTOP"
        ? ["scontrol", ["suspend", handle.jobId]]
        : signal === "SIGCONT"
          ? ["scontrol", ["resume", handle.jobId]]
          : signal === "SIGTERM"
            ? ["scancel", ["--full", "--signal=TERM", handle.jobId]]
            : // Ends the job: every process Slurm tracks gets SIGKILL after KillWait at the latest.
              ["scancel", ["--full", "--signal=KILL", handle.jobId]];
    if (signal === "SIGKILL") {
      const killed = await this.slurm(command, args);
      if (killed.code !== 0 && classifyFailure(killed.stderr) !== "unknown-job") {
        throw new Error(`scancel --signal=KILL failed: ${killed.stderr.trim()}`);
      }
      return this.runOrGone("scancel", [handle.jobId]);
    }
    return this.runOrGone(command, args);
  }

  /** Slurm delivers the signals; the studio keeps the grace and sends the KILL (see README). */
  async cancel(handle: SlurmAttemptHandle): Promise<boolean> {
    await this.signal(handle, "SIGCONT");
    return this.signal(handle, "SIGTERM");
  }

  graceKeptByRunner(): boolean {
    return false;
  }

  /** True when the command worked, false when the job is not there, throws otherwise. */
  private async runOrGone(command: string, args: string[]): Promise<boolean> {
    const result = await this.slurm(command, args);
    if (result.code === 0) return true;
    const failure = classifyFailure(result.stderr);
    if (failure === "unknown-job") return false;
    if (failure === "permission-denied" && command === "scontrol") {
      throw new Error(
        `Slurm refused ${command} ${args[0]}: pausing a job takes a Slurm operator (SlurmUser, root, or AdminLevel=Operator in sacctmgr); ${result.stderr.trim()}`,
      );
    }
    throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr.trim()}`);
  }

  /**
   * exit.json when the runner wrote one. Otherwise, for a job Slurm itself ended (scancel's
   * SIGKILL, time or memory limit) after the runner had started: the outcome from Slurm's
   * record, with the runner's pids and start from runner.json. For a job that ended before
   * any runner ran (cancelled while queued): Slurm's record, with no pids.
   */
  async readOutcome(taskDir: string, attempt: number): Promise<ExitRecord | null> {
    const exit = readExitRecord(taskDir, attempt);
    if (exit) return exit;
    const handle = readHandleFile(taskDir, attempt);
    if (!handle) return null;
    const job = await this.query(handle);
    if (job.kind !== "known") return null;
    // The runner may have finished while Slurm was asked.
    const late = readExitRecord(taskDir, attempt);
    if (late) return late;
    const runner = readRunnerRecord(taskDir, attempt);
    if (!runner) {
      const never = endBeforeRunner(job.record);
      if (!never) return null;
      const now = new Date().toISOString();
      return {
        version: RECORD_VERSION,
        attempt,
        ...never,
        startedAt: now,
        endedAt: now,
        trainerPid: null,
        runnerPid: null,
      };
    }
    const end = endWithoutRunner(job.record);
    if (!end) return null;
    return {
      version: RECORD_VERSION,
      attempt,
      ...end,
      startedAt: runner.startedAt,
      // When the studio learned it: Slurm's end time is in the controller's local time zone.
      endedAt: new Date().toISOString(),
      trainerPid: runner.trainer.pid,
      runnerPid: runner.runner.pid,
    };
  }

  /** From slurm-job.json, or, when the studio died right after sbatch, by the job's name. */
  async recoverHandle(taskDir: string, attempt: number): Promise<SlurmAttemptHandle | null> {
    const recorded = readHandleFile(taskDir, attempt);
    if (recorded) return recorded;
    const result = await this.slurm("squeue", [
      "--noheader",
      "--states=all",
      `--name=${jobName(taskDir, attempt)}`,
      "--format=%i",
    ]);
    if (result.code !== 0) {
      throw new Error(`squeue could not look for the job: ${result.stderr.trim()}`);
    }
    const ids = result.stdout.split("\n").filter((line) => /^\d+$/.test(line.trim()));
    const jobId = ids.pop()?.trim();
    if (!jobId) return null;
    const found: SlurmAttemptHandle = {
      kind: "slurm",
      version: HANDLE_VERSION,
      taskDir,
      attempt,
      jobId,
      cluster: null,
      node: null,
    };
    const job = await this.query(found);
    const handle = { ...found, node: job.kind === "known" ? job.record.node : null };
    writeJsonAtomic(handleFile(taskDir), handle);
    return handle;
  }

  /** squeue is no cheap look: the watcher checks a Slurm attempt fully every poll. */
  quickLook(): null {
    return null;
  }

  /** Only a hint: on a network file system, writes from compute nodes raise no local event. */
  watch(taskDir: string, onHint: FolderHint): () => void {
    return watchTaskFolder(taskDir, onHint);
  }

  /**
   * squeue while the controller remembers the job, then sacct (accounting), then sacct -c (job
   * completion log). A job id that now names another job (ids restart after the controller's
   * state is wiped) is unknown: the name is the job's identity check, as the start time is a
   * process's.
   */
  private query(handle: SlurmAttemptHandle, fresh = false): Promise<JobQuery> {
    const key = answerKey(handle);
    const now = Date.now();
    const cached = this.answers.get(key);
    if (!fresh && cached && now - cached.at < ANSWER_TTL_MS) return cached.answer;
    for (const [k, old] of this.answers) if (now - old.at >= ANSWER_TTL_MS) this.answers.delete(k);
    const answer = this.ask(handle);
    this.answers.set(key, { at: now, answer });
    return answer;
  }

  private async ask(handle: SlurmAttemptHandle): Promise<JobQuery> {
    const job = await this.queryId(handle.jobId);
    if (job.kind !== "known" || job.record.name === null) return job;
    return job.record.name === jobName(handle.taskDir, handle.attempt) ? job : { kind: "unknown" };
  }

  private async queryId(jobId: string): Promise<JobQuery> {
    const squeue = await this.slurm("squeue", [
      "--noheader",
      "--states=all",
      `--jobs=${jobId}`,
      `--format=${SQUEUE_FORMAT}`,
    ]);
    if (squeue.code === 0) {
      const record = parseSqueue(squeue.stdout, jobId);
      if (record) return { kind: "known", record };
    } else if (classifyFailure(squeue.stderr) !== "unknown-job") {
      return { kind: "unreachable", detail: squeue.stderr.trim() || `squeue exit ${squeue.code}` };
    }
    const sacctArgs = [
      "--noheader",
      "--parsable2",
      "--allocations",
      `--jobs=${jobId}`,
      `--format=${SACCT_FIELDS}`,
    ];
    let sacct = await this.slurm("sacct", sacctArgs);
    if (sacct.code !== 0 && classifyFailure(sacct.stderr) === "accounting-disabled") {
      sacct = await this.slurm("sacct", ["--completion", ...sacctArgs]);
    }
    if (sacct.code !== 0) {
      return { kind: "unreachable", detail: sacct.stderr.trim() || `sacct exit ${sacct.code}` };
    }
    const record = parseSacct(sacct.stdout, jobId);
    return record ? { kind: "known", record } : { kind: "unknown" };
  }

  /** Runs a Slurm command (argv, no shell). A command that hangs counts as no answer. */
  private slurm(
    command: string,
    args: string[],
    env: Record<string, string | undefined> = this.slurmConf
      ? { ...process.env, SLURM_CONF: this.slurmConf }
      : process.env,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(command, args, {
        // Next's types make NODE_ENV mandatory in ProcessEnv; Slurm commands do not need it.
        env: env as NodeJS.ProcessEnv,
        stdio: ["ignore", "pipe", "pipe"],
        timeout: this.commandTimeoutMs,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
      });
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      child.on("error", (err) =>
        resolve({ code: 127, stdout, stderr: `${command}: ${err.message}` }),
      );
      child.on("close", (code, signal) => {
        const timedOut = signal
          ? `${command} did not answer within ${this.commandTimeoutMs} ms (socket timed out)`
          : "";
        resolve({ code: code ?? 1, stdout, stderr: stderr || timedOut });
      });
    });
  }
}

function answerKey(handle: SlurmAttemptHandle): string {
  return `${handle.jobId} ${handle.attempt} ${handle.taskDir}`;
}

function readHandleFile(taskDir: string, attempt: number): SlurmAttemptHandle | null {
  const path = handleFile(taskDir);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new RecordUnreadable(path, `cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RecordUnreadable(path, "not JSON");
  }
  const parsed = slurmHandleSchema.safeParse(json);
  if (!parsed.success) throw new RecordUnreadable(path, "not a Slurm job record");
  return parsed.data.attempt === attempt ? parsed.data : null;
}

/** How many GPUs the attempt was given, from its config.json (the scheduler's choice). */
function gpuCount(taskDir: string): number {
  try {
    const config = JSON.parse(readFileSync(join(taskDir, "config.json"), "utf8")) as {
      gpus?: unknown;
    };
    return Array.isArray(config.gpus) ? config.gpus.length : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
}
