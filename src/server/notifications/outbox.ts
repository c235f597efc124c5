import { randomUUID } from "node:crypto";
import { and, asc, count, desc, eq, lte } from "drizzle-orm";
import type { NotificationKind } from "../../shared/notification-decision";
import type { Db } from "../db/client";
import { type NotificationRow, notificationOutbox, type TaskEventRow, tasks } from "../db/schema";
import { NOTIFICATION_PAYLOAD_VERSION, type StoredNotification } from "./payload";

/**
 * The outbox's reads and writes. Rows are inserted only by `addEvent` (../tasks/repository),
 * inside the event's own transaction; the delivery loop (./delivery-loop) moves them to
 * delivered or failed. Every write is conditional on the row still being pending, and the table
 * is fenced, so only the current supervisor's writes land.
 */

/** Queues the notification `event` makes. Call inside the transaction that inserted the event. */
export async function enqueueNotification(
  tx: Db,
  event: TaskEventRow,
  kind: NotificationKind,
): Promise<void> {
  const [task] = await tx
    .select({ name: tasks.name })
    .from(tasks)
    .where(eq(tasks.id, event.taskId));
  const cause = event.data?.cause;
  const payload: StoredNotification = {
    version: NOTIFICATION_PAYLOAD_VERSION,
    kind,
    eventType: event.type,
    taskId: event.taskId,
    taskName: task?.name ?? event.taskId,
    attempt: event.attempt,
    message: event.message,
    cause: typeof cause === "string" ? cause : null,
    at: event.at.toISOString(),
  };
  await tx.insert(notificationOutbox).values({
    deliveryId: randomUUID(),
    taskId: event.taskId,
    eventId: event.id,
    payload,
  });
}

/** Pending rows whose next try is due, oldest first. */
export function dueNotifications(db: Db, now: Date, limit: number): Promise<NotificationRow[]> {
  return db
    .select()
    .from(notificationOutbox)
    .where(
      and(eq(notificationOutbox.status, "pending"), lte(notificationOutbox.nextAttemptAt, now)),
    )
    .orderBy(asc(notificationOutbox.nextAttemptAt), asc(notificationOutbox.id))
    .limit(limit);
}

/** What became of one try, as the delivery loop records it. */
export type RecordedTry =
  | { status: "delivered"; attempts: number }
  | { status: "pending"; attempts: number; nextAttemptAt: Date; error: string }
  | { status: "failed"; attempts: number; error: string };

/** Records a try's result; false when the row was no longer pending (nothing changed). */
export async function recordTry(db: Db, id: number, result: RecordedTry): Promise<boolean> {
  const now = new Date();
  const rows = await db
    .update(notificationOutbox)
    .set(
      result.status === "pending"
        ? {
            attempts: result.attempts,
            nextAttemptAt: result.nextAttemptAt,
            lastError: result.error,
          }
        : {
            status: result.status,
            attempts: result.attempts,
            finishedAt: now,
            ...(result.status === "failed" ? { lastError: result.error } : {}),
          },
    )
    .where(and(eq(notificationOutbox.id, id), eq(notificationOutbox.status, "pending")))
    .returning({ id: notificationOutbox.id });
  return rows.length > 0;
}

export interface OutboxSummary {
  pending: number;
  delivered: number;
  failed: number;
  /** The notification given up most recently, with why. */
  lastFailure: {
    deliveryId: string;
    taskId: string;
    kind: string;
    attempts: number;
    error: string | null;
    at: Date | null;
  } | null;
}

/** Counts per status and the latest failure: for `studio.info` and `studio status`. */
export async function outboxSummary(db: Db): Promise<OutboxSummary> {
  const counts = await db
    .select({ status: notificationOutbox.status, n: count() })
    .from(notificationOutbox)
    .groupBy(notificationOutbox.status);
  const [failed] = await db
    .select()
    .from(notificationOutbox)
    .where(eq(notificationOutbox.status, "failed"))
    .orderBy(desc(notificationOutbox.finishedAt), desc(notificationOutbox.id))
    .limit(1);
  const n = (status: string) => counts.find((c) => c.status === status)?.n ?? 0;
  return {
    pending: n("pending"),
    delivered: n("delivered"),
    failed: n("failed"),
    lastFailure: failed
      ? {
          deliveryId: failed.deliveryId,
          taskId: failed.taskId,
          kind: (failed.payload as { kind?: unknown }).kind?.toString() ?? "unknown",
          attempts: failed.attempts,
          error: failed.lastError,
          at: failed.finishedAt,
        }
      : null,
  };
}
