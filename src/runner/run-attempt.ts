import { spawn } from "node:child_process";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
} from "node:fs";
import { setPriority } from "node:os";
import { basename, join } from "node:path";
import { writeJsonAtomic } from "../platform/atomic-write";
import { readBootId, readIdentity, readStat } from "../platform/identity";
import type { RunnerArgs } from "./args";
import {
  type CancelRequest,
  cancelRequestPath,
  type ExitRecord,
  exitRecordPath,
  type ProcessRef,
  RECORD_VERSION,
  type RunnerRecord,
  runnerRecordPath,
  TRAINING_LOG_FILE,
} from "./records";
import { type AttemptGroups, createAttemptGroups, wrapInGroups } from "./resource-limits";
import { startSystemSampler } from "./system-sampler";

/** How often a runner that could not write exit.json (a full disk) tries again. */
const EXIT_RETRY_MS = 2_000;

/** After the run-time limit's SIGTERM, how long the trainer has to save a checkpoint. */
const RUN_LIMIT_GRACE_MS = 30_000;

/** How often the runner looks for cancel.json besides the studio's SIGUSR2 (a studio may be down). */
const CANCEL_LOOK_MS = 1_000;

/** How often the trainer's CPU, memory and GPUs are sampled into system.jsonl (./system-sampler). */
const SYSTEM_SAMPLE_MS = Number(process.env.STUDIO_SYSTEM_SAMPLE_MS) || 5_000;

/**
 * Runs one attempt: the trainer as this process's child in its own process group (or, with
 * `shareGroup`, in the runner's: see RunnerArgs), in the task folder as working directory, its
 * stdout and stderr going straight to training.log, then the outcome recorded in exit.json.
 */
export function runAttempt({
  taskDir,
  attempt,
  file,
  args,
  shareGroup,
  limits = {},
}: RunnerArgs): void {
  mkdirSync(taskDir, { recursive: true });
  // Whatever an earlier launch left is not this attempt's, and must not look like it.
  rmSync(exitRecordPath(taskDir), { force: true });
  rmSync(runnerRecordPath(taskDir), { force: true });

  const logFd = openSync(join(taskDir, TRAINING_LOG_FILE), "a");
  const startedAt = new Date().toISOString();
  const self = readIdentity(process.pid);
  if (!self) throw new Error("cannot read this runner's own /proc entry");
  const runner: ProcessRef = { pid: self.pid, startTime: self.startTime };

  let trainerPid: number | null = null;
  let error: string | undefined;
  let recorded = false;
  let stopCancelWatch = () => {};
  let stopSampler = () => {};
  let stoppedBy: ExitRecord["stoppedBy"];
  let runTimer: NodeJS.Timeout | null = null;
  let groups: AttemptGroups | null = null;
  try {
    // Named after the task folder and attempt: unique on this machine, and says whose it is.
    groups = createAttemptGroups(`${basename(taskDir)}-a${attempt}`, limits);
  } catch (err) {
    error = (err as Error).message;
  }
  const recordExit = (exitCode: number | null, signal: string | null) => {
    if (recorded) return;
    recorded = true;
    stopCancelWatch();
    stopSampler();
    // In a shared group the scheduler ends what is left once this runner exits (Slurm ends
    // every process of the batch step); the runner cannot kill its own group and live on.
    if (trainerPid !== null && !shareGroup) killLeftovers(trainerPid);
    if (runTimer) clearTimeout(runTimer);
    const memory = groups?.memory() ?? undefined;
    groups?.release();
    try {
      fsyncSync(logFd);
    } catch {
      // A full disk can fail the flush; the outcome is still recorded below.
    }
    closeSync(logFd);
    const diskFreeBytes = exitCode === 0 ? undefined : freeBytes(taskDir);
    const record: ExitRecord = {
      version: RECORD_VERSION,
      attempt,
      exitCode,
      signal,
      startedAt,
      endedAt: new Date().toISOString(),
      trainerPid,
      runnerPid: runner.pid,
      ...(error === undefined ? {} : { error }),
      ...(memory ? { memory } : {}),
      ...(stoppedBy ? { stoppedBy } : {}),
      ...(diskFreeBytes === undefined ? {} : { diskFreeBytes }),
    };
    // The outcome is the one thing that must not be lost: on a full disk keep it and try again
    // until space is freed (the studio follows this live runner meanwhile). Only a task folder
    // that is gone ends the attempt with nothing recorded.
    const write = () => {
      try {
        writeJsonAtomic(exitRecordPath(taskDir), record);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
        setTimeout(write, EXIT_RETRY_MS);
      }
    };
    write();
  };

  if (error !== undefined) {
    // A limit that cannot be held: the trainer does not start.
    recordExit(null, null);
    return;
  }
  const command = wrapInGroups(groups, file, args);
  const trainer = spawn(command.file, command.args, {
    // Its own group: the studio signals the trainer and its children, never the runner.
    detached: !shareGroup,
    // A file descriptor, not a pipe: no line depends on this or any parent reading it.
    stdio: ["ignore", logFd, logFd],
    env: groups
      ? { ...process.env, STUDIO_CGROUP_PROCS: groups.procsFiles.join(" ") }
      : process.env,
    cwd: taskDir,
  });
  trainer.on("error", (err) => {
    // Node reports a failed spawn (ENOENT, EACCES) here, with no exit event to follow.
    error ??= err.message;
    if (trainer.pid === undefined) recordExit(null, null);
  });
  trainer.on("exit", (code, signal) => recordExit(code, signal));
  if (trainer.pid === undefined) return;
  trainerPid = trainer.pid;
  if (limits.nice !== undefined) {
    try {
      // Before the trainer has done anything: its children inherit the priority.
      setPriority(trainer.pid, limits.nice);
    } catch {
      // It exited already; the exit event follows.
    }
  }

  // Until the event loop runs, the trainer cannot be reaped, so its /proc entry is still there
  // even if it already exited.
  const trainerStat = readIdentity(trainer.pid);
  try {
    if (!trainerStat) throw new Error(`trainer ${trainer.pid} has no /proc entry`);
    const record: RunnerRecord = {
      version: RECORD_VERSION,
      attempt,
      bootId: readBootId(),
      runner,
      trainer: { pid: trainer.pid, startTime: trainerStat.startTime },
      startedAt,
    };
    writeJsonAtomic(runnerRecordPath(taskDir), record);
    const pid = trainer.pid;
    const signalTrainer = (sig: NodeJS.Signals) => {
      try {
        // The trainer is this process's unreaped child, so its pid (and group) is still its own.
        process.kill(shareGroup ? pid : -pid, sig);
      } catch {
        // ESRCH: it is exiting; the exit event follows.
      }
    };
    stopCancelWatch = watchCancel(taskDir, attempt, signalTrainer);
    stopSampler = startSystemSampler({
      taskDir,
      attempt,
      pgid: shareGroup ? (readStat(process.pid)?.pgrp ?? pid) : pid,
      exclude: shareGroup ? process.pid : null,
      intervalMs: SYSTEM_SAMPLE_MS,
      visibleGpus: process.env.CUDA_VISIBLE_DEVICES,
    });
    if (limits.maxRunSeconds !== undefined) {
      // The run-time limit, kept by the runner like a cancel: SIGTERM (time to save a
      // checkpoint), SIGKILL after the grace.
      runTimer = setTimeout(() => {
        stoppedBy = "max-run-time";
        signalTrainer("SIGCONT");
        signalTrainer("SIGTERM");
        runTimer = setTimeout(() => signalTrainer("SIGKILL"), RUN_LIMIT_GRACE_MS);
      }, limits.maxRunSeconds * 1000);
    }
  } catch (err) {
    // Without runner.json the studio cannot prove the trainer is ours: it must not run unseen.
    error = `could not record the runner: ${(err as Error).message}`;
    if (shareGroup) trainer.kill("SIGKILL");
    else killLeftovers(trainer.pid);
  }
}

/**
 * Ends the rest of the trainer's process group (workers it left behind) once the trainer is
 * gone, so that exit.json also means nothing of the attempt still runs. The group id cannot be
 * handed to a new process while any member remains, so this reaches only the attempt's own.
 */
function killLeftovers(pgid: number) {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // ESRCH: the group is already empty.
  }
}

/**
 * Carries out the studio's cancel.json for this attempt: SIGCONT (a paused trainer cannot act on
 * SIGTERM) and SIGTERM at once, SIGKILL when the grace period is over. The studio's SIGUSR2 makes
 * it look at once; a look every second covers a request written while no studio was running to
 * send one, and a request that predates this runner. The grace counts from the request, so a
 * cancel ends on time whoever was up to see it.
 */
function watchCancel(
  taskDir: string,
  attempt: number,
  signalTrainer: (signal: NodeJS.Signals) => void,
): () => void {
  let killTimer: NodeJS.Timeout | null = null;
  let acting = false;
  const look = () => {
    if (acting) return;
    const request = readCancelRequest(taskDir, attempt);
    if (!request) return;
    acting = true;
    signalTrainer("SIGCONT");
    signalTrainer("SIGTERM");
    const wait = Math.max(0, Date.parse(request.requestedAt) + request.graceMs - Date.now());
    killTimer = setTimeout(() => signalTrainer("SIGKILL"), wait);
  };
  process.on("SIGUSR2", look);
  const poll = setInterval(look, CANCEL_LOOK_MS);
  look();
  return () => {
    process.off("SIGUSR2", look);
    clearInterval(poll);
    if (killTimer) clearTimeout(killTimer);
  };
}

/** This attempt's cancel request, or null (absent, another attempt's, or not a request). */
function readCancelRequest(taskDir: string, attempt: number): CancelRequest | null {
  try {
    const value = JSON.parse(readFileSync(cancelRequestPath(taskDir), "utf8")) as CancelRequest;
    const valid =
      value.attempt === attempt &&
      typeof value.graceMs === "number" &&
      Number.isFinite(value.graceMs) &&
      !Number.isNaN(Date.parse(value.requestedAt));
    return valid ? value : null;
  } catch {
    return null;
  }
}

/** Bytes free to unprivileged writers on the disk that holds `dir`; undefined if unknown. */
function freeBytes(dir: string): number | undefined {
  try {
    const disk = statfsSync(dir);
    return disk.bavail * disk.bsize;
  } catch {
    return undefined;
  }
}
