import type { AttemptHandle, ExitRecord, ProcessState } from "./executor";

/**
 * Reconciliation as one pure decision: for a task that is not terminal, what is true now? The
 * same table decides at boot (every open task, once) and live (each followed attempt, on every
 * check): the caller gathers the observations (./observe) and carries the decision out
 * (./reconciler). Every branch is tested in test/supervisor/reconcile.test.ts.
 *
 * What the studio can see for itself outranks what a file says: a recorded outcome is believed
 * only when the processes it speaks of are gone, and an unreadable record ends its own task with
 * a reason that names the file, never the studio.
 */

/** The non-terminal statuses a task can be found in ("pending" needs no decision). */
export type ReconcilableStatus = "queued" | "preparing" | "training" | "paused";

export interface ReconcileInput {
  status: ReconcilableStatus;
  /** The task's latest attempt, or null when none was recorded. */
  attempt: {
    /** The handle stored once the launch was confirmed; null while in flight, or unreadable. */
    handle: AttemptHandle | null;
    /** What is wrong with the stored handle when it no longer parses. */
    handleProblem?: string | null;
    cancelRequested: boolean;
    /**
     * With cancelRequested: the studio itself stopped the trainer (a watchdog), and the attempt
     * ends as failed for this reason, not as cancelled. Null when a person cancelled.
     */
    stoppedFor?: string | null;
    /** When the attempt was written as intended (ms since epoch), before anything was spawned. */
    intentAt: number;
  } | null;
  observed: {
    /** The attempt's outcome record (exit.json of this attempt number). */
    exit: ExitRecord | null;
    /** exit.json is there but unreadable: the file and what is wrong with it. */
    exitProblem?: string | null;
    /** The handle the runner recorded (runner.json), for an attempt whose handle was not stored. */
    recoveredHandle: AttemptHandle | null;
    /** runner.json is there but unreadable. */
    recoveredProblem?: string | null;
    /**
     * The processes of the stored (else recovered) handle; null when there is no handle;
     * "unknown" when the executor could not tell (a cluster controller that did not answer).
     */
    processes: { runner: ProcessState; trainer: ProcessState } | null | "unknown";
  };
  hasCheckpoint: boolean;
  autoResume: boolean;
  /** ms since epoch */
  now: number;
  /** How long a launch may take before it is given up (the executor's launch timeout). */
  launchTimeoutMs: number;
}

export const TERMINATED_UNEXPECTEDLY = "Training process terminated unexpectedly";
export const RECORD_UNREADABLE = "The attempt's record cannot be believed";

/**
 * The runner writes exit.json, then exits: for this long after the record's end time a live
 * runner is just finishing. A runner still there later (stopped by someone) no longer delays it.
 */
export const RUNNER_EXIT_WINDOW_MS = 10_000;

export type ReconcileDecision =
  /** Leave it queued; the scheduler starts it in its turn. */
  | { action: "requeue" }
  /** The outcome is a recorded fact (or a cancel the reboot carried out): write it. */
  | {
      action: "finalize";
      status: "completed" | "failed" | "cancelled";
      reason: string;
      exitCode: number | null;
      signal: string | null;
    }
  /** The machine restarted: nothing of the attempt runs any more. */
  | { action: "interrupted"; reason: string; resumable: boolean; autoResume: boolean }
  /**
   * Ours and alive: follow it (again). `paused` is the trainer's real state (set the status to
   * match); `storeHandle` is a recovered handle to store; `continueCancel`: a cancel was asked
   * and the trainer still runs, so ask again. `warning`: a record said otherwise and was not
   * believed; tell the user why.
   */
  | {
      action: "reattach";
      paused: boolean;
      storeHandle: AttemptHandle | null;
      continueCancel: boolean;
      warning?: string;
    }
  /** exit.json is written and its runner is exiting right now: look again in a moment. */
  | { action: "await-runner" }
  /**
   * The attempt ended without an outcome that can be believed: mark the task failed with what
   * was seen, no exit code invented. A trainer still alive has no one left to record its
   * outcome: kill its group (`killTrainerGroup`) with the handle's identity check.
   */
  | {
      action: "failed-unexpectedly";
      reason: typeof TERMINATED_UNEXPECTEDLY | typeof RECORD_UNREADABLE;
      seen: string;
      killTrainerGroup: boolean;
    }
  /** A launch may still be in flight: decide again at `recheckAt`, start nothing meanwhile. */
  | { action: "wait"; recheckAt: number }
  /** The launch never confirmed and its time is up (or its handle is lost): fail the attempt. */
  | { action: "launch-failed"; reason: string }
  /** The executor could not say what runs: change nothing, look again later. */
  | { action: "undecided"; why: string };

/**
 * What an exit record means for the task, given whether someone asked it to stop: a person
 * (cancelled), or the studio for a reason (`stoppedFor`: failed, for that reason).
 */
export function outcomeOfExit(
  exit: ExitRecord,
  cancelRequested: boolean,
  stoppedFor: string | null = null,
): { status: "completed" | "failed" | "cancelled"; reason: string } {
  if (cancelRequested && stoppedFor) return { status: "failed", reason: stoppedFor };
  if (cancelRequested) return { status: "cancelled", reason: "cancelled" };
  // A trainer that saved and exited 0 on the run-time limit's SIGTERM did not finish its run.
  if (exit.stoppedBy === "max-run-time") {
    return { status: "failed", reason: "stopped at its maximum run time" };
  }
  if (exit.exitCode === 0) return { status: "completed", reason: "finished" };
  if (exit.error) return { status: "failed", reason: `could not start the trainer: ${exit.error}` };
  if (exit.signal) return { status: "failed", reason: `trainer killed by ${exit.signal}` };
  return { status: "failed", reason: `trainer exited with code ${exit.exitCode}` };
}

const isUp = (state: ProcessState) => state === "alive" || state === "stopped";

export function reconcile(input: ReconcileInput): ReconcileDecision {
  const { status, attempt, observed } = input;
  if (status === "queued") return { action: "requeue" };
  if (!attempt) {
    return {
      action: "launch-failed",
      reason: `the task was ${status} but no attempt was recorded`,
    };
  }

  const handle = attempt.handle ?? observed.recoveredHandle;
  const processes = observed.processes;
  if (processes === "unknown") {
    // A recorded outcome needs no process to be believed when none can be seen.
    if (observed.exit) return finalizeFrom(observed.exit, attempt);
    return { action: "undecided", why: "the executor could not say whether the attempt runs" };
  }

  if (observed.exit || observed.exitProblem) {
    const exitProblem =
      observed.exitProblem ?? (handle && observed.exit ? mismatch(observed.exit, handle) : null);
    if (processes && exitProblem === null && observed.exit) {
      const trainerUp = isUp(processes.trainer);
      if (isUp(processes.runner)) {
        if (trainerUp) {
          return follow(input, handle, processes, {
            warning: `exit.json says the trainer ${ended(observed.exit)}, but its trainer (${pidOf(handle, "trainer")}) is still running: not believed`,
          });
        }
        if (input.now - Date.parse(observed.exit.endedAt) < RUNNER_EXIT_WINDOW_MS) {
          return { action: "await-runner" };
        }
      } else if (trainerUp) {
        return {
          action: "failed-unexpectedly",
          reason: RECORD_UNREADABLE,
          seen: `exit.json says the trainer ${ended(observed.exit)}, but its trainer (${pidOf(handle, "trainer")}) was still running with its runner ${phrase(processes.runner)}; the trainer was ended`,
          killTrainerGroup: true,
        };
      }
    }
    if (exitProblem === null && observed.exit) {
      return finalizeFrom(observed.exit, attempt);
    }
    // An outcome that cannot be believed. While the runner lives, its own record is to come.
    if (processes && isUp(processes.runner)) {
      return follow(input, handle, processes, {
        warning: `${exitProblem}; the runner still runs, so its own record is awaited`,
      });
    }
    return {
      action: "failed-unexpectedly",
      reason: RECORD_UNREADABLE,
      seen: processes
        ? `${exitProblem}; runner ${phrase(processes.runner)}; trainer ${phrase(processes.trainer)}`
        : `${exitProblem}; the attempt's processes cannot be identified`,
      killTrainerGroup: processes !== null && isUp(processes.trainer),
    };
  }

  if (!handle || !processes) {
    const problems = [attempt.handleProblem && `stored handle: ${attempt.handleProblem}`]
      .concat(observed.recoveredProblem ? [observed.recoveredProblem] : [])
      .filter(Boolean);
    if (problems.length) {
      return {
        action: "launch-failed",
        reason: `the attempt's processes cannot be identified (${problems.join("; ")})`,
      };
    }
    // Nothing proves a process exists, but a launch still within its time might yet confirm:
    // starting another copy now could run the trainer twice.
    const recheckAt = attempt.intentAt + input.launchTimeoutMs;
    if (input.now < recheckAt) return { action: "wait", recheckAt };
    return {
      action: "launch-failed",
      reason: `the launch was not confirmed within ${input.launchTimeoutMs} ms`,
    };
  }

  const { runner, trainer } = processes;
  if (runner === "other-boot") {
    if (attempt.cancelRequested) {
      return {
        action: "finalize",
        status: attempt.stoppedFor ? "failed" : "cancelled",
        reason: `${attempt.stoppedFor ?? "cancelled"}; the machine restarted before the trainer stopped`,
        exitCode: null,
        signal: null,
      };
    }
    return {
      action: "interrupted",
      reason: "the machine restarted during training",
      resumable: input.hasCheckpoint,
      autoResume: input.hasCheckpoint && input.autoResume,
    };
  }

  if (isUp(runner)) return follow(input, handle, processes, {});

  return {
    action: "failed-unexpectedly",
    reason: TERMINATED_UNEXPECTEDLY,
    seen: `runner ${phrase(runner)} without recording an exit; trainer ${phrase(trainer)}`,
    killTrainerGroup: isUp(trainer),
  };
}

function follow(
  input: ReconcileInput,
  handle: AttemptHandle | null,
  processes: { runner: ProcessState; trainer: ProcessState },
  extra: { warning?: string },
): ReconcileDecision {
  const attempt = input.attempt!;
  return {
    action: "reattach",
    paused: processes.trainer === "stopped",
    storeHandle: attempt.handle ? null : handle,
    continueCancel: attempt.cancelRequested && isUp(processes.trainer),
    ...extra,
  };
}

function finalizeFrom(
  exit: ExitRecord,
  attempt: { cancelRequested: boolean; stoppedFor?: string | null },
): ReconcileDecision {
  return {
    action: "finalize",
    ...outcomeOfExit(exit, attempt.cancelRequested, attempt.stoppedFor ?? null),
    exitCode: exit.exitCode,
    signal: exit.signal,
  };
}

/** An exit record that names other processes than the attempt's own is not its outcome. */
function mismatch(exit: ExitRecord, handle: AttemptHandle): string | null {
  if (handle.kind !== "local") return null;
  const wrong: string[] = [];
  if (exit.runnerPid !== null && exit.runnerPid !== handle.runner.pid) {
    wrong.push(`runner pid ${exit.runnerPid} (the attempt's is ${handle.runner.pid})`);
  }
  if (exit.trainerPid !== null && exit.trainerPid !== handle.trainer.pid) {
    wrong.push(`trainer pid ${exit.trainerPid} (the attempt's is ${handle.trainer.pid})`);
  }
  return wrong.length ? `exit.json names ${wrong.join(" and ")}` : null;
}

function ended(exit: ExitRecord): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  if (exit.exitCode !== null) return `exited with code ${exit.exitCode}`;
  return "ended";
}

function pidOf(handle: AttemptHandle | null, which: "runner" | "trainer"): string {
  return handle?.kind === "local" ? `pid ${handle[which].pid}` : "its job";
}

function phrase(state: ProcessState): string {
  switch (state) {
    case "alive":
      return "still running";
    case "stopped":
      return "still running (stopped)";
    case "gone":
      return "gone";
    case "zombie":
      return "exited (zombie)";
    case "reused":
      return "gone (its pid now belongs to another process)";
    case "other-boot":
      return "from an earlier boot";
  }
}
