import type { AttemptHandle, ExitRecord, ProcessState } from "./executor";

/**
 * Boot reconciliation as one pure decision: for a task that was not terminal when the last
 * studio stopped, what is true now? The caller gathers the observations (see
 * `observeAttempt` in ./executor) and carries the decision out; every branch is tested in
 * test/supervisor/reconcile.test.ts.
 */

/** The non-terminal statuses a task can be found in at boot ("pending" needs no decision). */
export type ReconcilableStatus = "queued" | "preparing" | "training" | "paused";

export interface ReconcileInput {
  status: ReconcilableStatus;
  /** The task's latest attempt, or null when none was recorded. */
  attempt: {
    /** The handle stored once the launch was confirmed; null while it was still in flight. */
    handle: AttemptHandle | null;
    cancelRequested: boolean;
    /** When the attempt was written as intended (ms since epoch), before anything was spawned. */
    intentAt: number;
  } | null;
  observed: {
    /** The attempt's outcome record (exit.json of this attempt number). */
    exit: ExitRecord | null;
    /** The handle the runner recorded (runner.json), for an attempt whose handle was not stored. */
    recoveredHandle: AttemptHandle | null;
    /** The processes of the stored (else recovered) handle; null when there is no handle. */
    processes: { runner: ProcessState; trainer: ProcessState } | null;
  };
  hasCheckpoint: boolean;
  autoResume: boolean;
  /** ms since epoch */
  now: number;
  /** How long a launch may take before it is given up (the executor's launch timeout). */
  launchTimeoutMs: number;
}

export const TERMINATED_UNEXPECTEDLY = "Training process terminated unexpectedly";

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
   * Ours and alive: follow it again. `paused` is the trainer's real state (set the status to
   * match); `storeHandle` is a recovered handle to store; `continueCancel`: a cancel was asked
   * and the trainer still runs, so send SIGTERM again (SIGCONT first when paused).
   */
  | {
      action: "reattach";
      paused: boolean;
      storeHandle: AttemptHandle | null;
      continueCancel: boolean;
    }
  /**
   * The runner is gone without an outcome record: mark the task failed with what was seen, no
   * exit code invented. A trainer still alive has no one left to record its outcome: kill its
   * group (`killTrainerGroup`) with the handle's identity check.
   */
  | {
      action: "failed-unexpectedly";
      reason: typeof TERMINATED_UNEXPECTEDLY;
      seen: string;
      killTrainerGroup: boolean;
    }
  /** A launch may still be in flight: decide again at `recheckAt`, start nothing meanwhile. */
  | { action: "wait"; recheckAt: number }
  /** The launch never confirmed and its time is up: fail the attempt. */
  | { action: "launch-failed"; reason: string };

/** What an exit record means for the task, given whether someone asked it to stop. */
export function outcomeOfExit(
  exit: ExitRecord,
  cancelRequested: boolean,
): { status: "completed" | "failed" | "cancelled"; reason: string } {
  if (cancelRequested) return { status: "cancelled", reason: "cancelled" };
  if (exit.exitCode === 0) return { status: "completed", reason: "finished" };
  if (exit.error) return { status: "failed", reason: `could not start the trainer: ${exit.error}` };
  if (exit.signal) return { status: "failed", reason: `trainer killed by ${exit.signal}` };
  return { status: "failed", reason: `trainer exited with code ${exit.exitCode}` };
}

const isUp = (state: ProcessState) => state === "alive" || state === "stopped";

export function reconcile(input: ReconcileInput): ReconcileDecision {
  const { status, attempt, observed } = input;
  if (status === "queued") return { action: "requeue" };

  // A recorded outcome wins over everything else, even one written before a reboot.
  if (observed.exit) {
    const outcome = outcomeOfExit(observed.exit, attempt?.cancelRequested ?? false);
    return {
      action: "finalize",
      ...outcome,
      exitCode: observed.exit.exitCode,
      signal: observed.exit.signal,
    };
  }

  if (!attempt) {
    return {
      action: "launch-failed",
      reason: `the task was ${status} but no attempt was recorded`,
    };
  }

  const handle = attempt.handle ?? observed.recoveredHandle;
  if (!handle || !observed.processes) {
    // Nothing proves a process exists, but a launch still within its time might yet confirm:
    // starting another copy now could run the trainer twice.
    const recheckAt = attempt.intentAt + input.launchTimeoutMs;
    if (input.now < recheckAt) return { action: "wait", recheckAt };
    return {
      action: "launch-failed",
      reason: `the launch was not confirmed within ${input.launchTimeoutMs} ms`,
    };
  }

  const { runner, trainer } = observed.processes;
  if (runner === "other-boot") {
    if (attempt.cancelRequested) {
      return {
        action: "finalize",
        status: "cancelled",
        reason: "cancelled; the machine restarted before the trainer stopped",
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

  if (isUp(runner)) {
    return {
      action: "reattach",
      paused: trainer === "stopped",
      storeHandle: attempt.handle ? null : handle,
      continueCancel: attempt.cancelRequested && isUp(trainer),
    };
  }

  return {
    action: "failed-unexpectedly",
    reason: TERMINATED_UNEXPECTEDLY,
    seen: `runner ${phrase(runner)} without recording an exit; trainer ${phrase(trainer)}`,
    killTrainerGroup: isUp(trainer),
  };
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
