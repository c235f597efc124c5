import { eq } from "drizzle-orm";
import { attempts, type TaskRow } from "../db/schema";
import { ACTIVE_STATUSES } from "../tasks/lifecycle";
import { transition } from "../tasks/repository";
import { publish, type SupervisorContext } from "./context";
import type { FailureCauseKind } from "./failure-cause";

/**
 * The writes that end an attempt. Each records the attempt's end, moves the task through the
 * lifecycle table (conditional on an active status, so a second writer changes nothing) and
 * publishes one event. Boot and live reconciliation, the launcher and the commands all end
 * attempts through these.
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
  await ctx.db
    .update(attempts)
    .set({
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      error: outcome.error ?? null,
      endedAt: outcome.endedAt ?? new Date(),
    })
    .where(eq(attempts.id, attempt.rowId));
  const row = await transition(
    ctx.db,
    attempt.taskId,
    outcome.status,
    { statusReason: outcome.reason, finishedAt: new Date() },
    [...ACTIVE_STATUSES],
  );
  const how =
    outcome.signal !== null
      ? ` (signal ${outcome.signal})`
      : outcome.exitCode !== null
        ? ` (exit code ${outcome.exitCode})`
        : "";
  await publish(ctx, row, {
    type: "exited",
    message: `${outcome.status}: ${outcome.reason}${how}`,
    attempt: attempt.number,
    data: { exitCode: outcome.exitCode, signal: outcome.signal, cause: outcome.cause ?? null },
  });
  return row;
}

/** The attempt ended with no outcome that can be believed: failed, with what was seen. */
export async function failAttempt(
  ctx: SupervisorContext,
  attempt: AttemptRef,
  reason: string,
  seen: string,
  eventType = "lost",
): Promise<TaskRow | undefined> {
  await ctx.db
    .update(attempts)
    .set({ error: seen, endedAt: new Date() })
    .where(eq(attempts.id, attempt.rowId));
  const row = await transition(
    ctx.db,
    attempt.taskId,
    "failed",
    { statusReason: `${reason}: ${seen}`, finishedAt: new Date() },
    [...ACTIVE_STATUSES],
  );
  await publish(ctx, row, {
    type: eventType,
    message: `${reason}: ${seen}`,
    attempt: attempt.number,
  });
  return row;
}

/** A task that was active with no attempt at all: failed through the same table. */
export async function failWithoutAttempt(
  ctx: SupervisorContext,
  task: TaskRow,
  reason: string,
): Promise<TaskRow | undefined> {
  const row = await transition(
    ctx.db,
    task.id,
    "failed",
    { statusReason: reason, finishedAt: new Date() },
    [...ACTIVE_STATUSES],
  );
  await publish(ctx, row, { type: "failed", message: reason });
  return row;
}

/** The machine restarted under a running attempt: nothing of it runs any more. */
export async function interruptAttempt(
  ctx: SupervisorContext,
  attempt: AttemptRef,
  decision: { reason: string; resumable: boolean },
): Promise<TaskRow | undefined> {
  await ctx.db
    .update(attempts)
    .set({ error: decision.reason, endedAt: new Date() })
    .where(eq(attempts.id, attempt.rowId));
  const row = await transition(
    ctx.db,
    attempt.taskId,
    "interrupted",
    { statusReason: decision.reason, finishedAt: new Date() },
    [...ACTIVE_STATUSES],
  );
  await publish(ctx, row, {
    type: "interrupted",
    message: `${decision.reason}${decision.resumable ? "; it can resume from its last checkpoint" : ""}`,
    attempt: attempt.number,
  });
  return row;
}
