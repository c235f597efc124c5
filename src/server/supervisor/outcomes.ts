import { eq } from "drizzle-orm";
import { attempts, type TaskRow } from "../db/schema";
import { ACTIVE_STATUSES } from "../tasks/lifecycle";
import { transition } from "../tasks/repository";
import { type SupervisorContext, writeWithEvent } from "./context";
import type { FailureCauseKind } from "./failure-cause";

/**
 * The writes that end an attempt. Each records the attempt's end, moves the task through the
 * lifecycle table (conditional on an active status, so a second writer changes nothing) and
 * records one event, all in one transaction (with the event's notification). Boot and live
 * reconciliation, the launcher and the commands all end attempts through these.
 */

export interface Outcome {
  status: "completed" | "failed" | "cancelled";
  reason: string;
  /** Why a failed trainer failed, when that could be named (./failure-cause). */
  cause?: FailureCauseKind;
  exitCode: number | null;
  signal: string | null;
  error?: string;
  endedAt?: Date;
}

export interface AttemptRef {
  taskId: string;
  /** The attempt row's id. */
  rowId: number;
  number: number;
}

/** Records the recorded outcome of an attempt. */
export async function finalizeAttempt(
  ctx: SupervisorContext,
  attempt: AttemptRef,
  outcome: Outcome,
): Promise<TaskRow | undefined> {
  const how =
    outcome.signal !== null
      ? ` (signal ${outcome.signal})`
      : outcome.exitCode !== null
        ? ` (exit code ${outcome.exitCode})`
        : "";
  return writeWithEvent(
    ctx,
    async (tx) => {
      await tx
        .update(attempts)
        .set({
          exitCode: outcome.exitCode,
          signal: outcome.signal,
          error: outcome.error ?? null,
          endedAt: outcome.endedAt ?? new Date(),
        })
        .where(eq(attempts.id, attempt.rowId));
      return transition(
        tx,
        attempt.taskId,
        outcome.status,
        { statusReason: outcome.reason, finishedAt: new Date() },
        [...ACTIVE_STATUSES],
      );
    },
    {
      type: "exited",
      message: `${outcome.status}: ${outcome.reason}${how}`,
      attempt: attempt.number,
      data: {
        status: outcome.status,
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        cause: outcome.cause ?? null,
      },
    },
  );
}

/** The attempt ended with no outcome that can be believed: failed, with what was seen. */
export async function failAttempt(
  ctx: SupervisorContext,
  attempt: AttemptRef,
  reason: string,
  seen: string,
  eventType: "lost" | "failed" = "lost",
): Promise<TaskRow | undefined> {
  return writeWithEvent(
    ctx,
    async (tx) => {
      await tx
        .update(attempts)
        .set({ error: seen, endedAt: new Date() })
        .where(eq(attempts.id, attempt.rowId));
      return transition(
        tx,
        attempt.taskId,
        "failed",
        { statusReason: `${reason}: ${seen}`, finishedAt: new Date() },
        [...ACTIVE_STATUSES],
      );
    },
    { type: eventType, message: `${reason}: ${seen}`, attempt: attempt.number },
  );
}

/** A task that was active with no attempt at all: failed through the same table. */
export async function failWithoutAttempt(
  ctx: SupervisorContext,
  task: TaskRow,
  reason: string,
): Promise<TaskRow | undefined> {
  return writeWithEvent(
    ctx,
    (tx) =>
      transition(tx, task.id, "failed", { statusReason: reason, finishedAt: new Date() }, [
        ...ACTIVE_STATUSES,
      ]),
    { type: "failed", message: reason },
  );
}

/** The machine restarted under a running attempt: nothing of it runs any more. */
export async function interruptAttempt(
  ctx: SupervisorContext,
  attempt: AttemptRef,
  decision: { reason: string; resumable: boolean },
): Promise<TaskRow | undefined> {
  return writeWithEvent(
    ctx,
    async (tx) => {
      await tx
        .update(attempts)
        .set({ error: decision.reason, endedAt: new Date() })
        .where(eq(attempts.id, attempt.rowId));
      return transition(
        tx,
        attempt.taskId,
        "interrupted",
        { statusReason: decision.reason, finishedAt: new Date() },
        [...ACTIVE_STATUSES],
      );
    },
    {
      type: "interrupted",
      message: `${decision.reason}${decision.resumable ? "; it can resume from its last checkpoint" : ""}`,
      attempt: attempt.number,
    },
  );
}
