import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { and, count, desc, eq, inArray, lt, or, type SQL } from "drizzle-orm";
import { notificationFor } from "../../shared/notification-decision";
import type { TaskEventType } from "../../shared/task-event-types";
import type { Db } from "../db/client";
import { attempts, type TaskRow, taskEvents, taskMetrics, tasks } from "../db/schema";
import { enqueueNotification } from "../notifications/outbox";
import { sourcesOf, type TaskStatus } from "./lifecycle";

export type NewTask = Omit<
  typeof tasks.$inferInsert,
  "id" | "status" | "createdAt" | "updatedAt" | "progress" | "folder"
>;

/** Short, URL- and shell-safe ids that a person can type: "t" + 10 base-32 characters. */
export function newTaskId(): string {
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  const bytes = randomBytes(10);
  let id = "t";
  for (const b of bytes) id += alphabet[b % 32];
  return id;
}

/** A new task, pending, with its folder fixed under `tasksRoot`. */
export async function insertTask(db: Db, input: NewTask, tasksRoot: string): Promise<TaskRow> {
  const id = newTaskId();
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(tasks)
      .values({ ...input, id, status: "pending", folder: join(tasksRoot, id) })
      .returning();
    await tx.insert(taskEvents).values({ taskId: id, type: "created", message: "task created" });
    return row!;
  });
}

export interface ListOptions {
  status?: TaskStatus[];
  limit: number;
  /** Keyset cursor: the createdAt/id of the last row of the previous page. */
  cursor?: { createdAt: Date; id: string };
}

export async function listTasks(db: Db, opts: ListOptions) {
  const where: SQL[] = [];
  if (opts.status?.length) where.push(inArray(tasks.status, opts.status));
  if (opts.cursor) {
    where.push(
      or(
        lt(tasks.createdAt, opts.cursor.createdAt),
        and(eq(tasks.createdAt, opts.cursor.createdAt), lt(tasks.id, opts.cursor.id)),
      )!,
    );
  }
  const rows = await db
    .select()
    .from(tasks)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(tasks.createdAt), desc(tasks.id))
    .limit(opts.limit + 1);
  const items = rows.slice(0, opts.limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor:
      rows.length > opts.limit && last ? { createdAt: last.createdAt, id: last.id } : undefined,
  };
}

export async function getTask(db: Db, id: string): Promise<TaskRow | undefined> {
  const [row] = await db.select().from(tasks).where(eq(tasks.id, id));
  return row;
}

export async function countByStatus(db: Db): Promise<Partial<Record<TaskStatus, number>>> {
  const rows = await db
    .select({ status: tasks.status, n: count() })
    .from(tasks)
    .groupBy(tasks.status);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/**
 * Moves a task to `to` only if its current status allows it (and, when given, only from
 * `from`). Returns the updated row, or undefined when the task was not in such a status: the
 * conditional update is what makes concurrent starts, cancels and monitors safe.
 */
export async function transition(
  db: Db,
  id: string,
  to: TaskStatus,
  patch: Partial<typeof tasks.$inferInsert> = {},
  from: TaskStatus[] = sourcesOf(to),
): Promise<TaskRow | undefined> {
  const allowed = from.filter((s) => sourcesOf(to).includes(s));
  if (allowed.length === 0) return undefined;
  const [row] = await db
    .update(tasks)
    .set({ ...patch, status: to, updatedAt: new Date() })
    .where(and(eq(tasks.id, id), inArray(tasks.status, allowed)))
    .returning();
  return row;
}

/**
 * Records a task event. With `notify` (a webhook is configured), the notification the event
 * makes, if any (../../shared/notification-decision), is queued in the outbox in the same
 * transaction: the event and its notification are stored together or not at all. This is the
 * one place outbox rows are written.
 */
export async function addEvent(
  db: Db,
  taskId: string,
  type: TaskEventType,
  message: string,
  extra: { attempt?: number; data?: Record<string, unknown>; notify?: boolean } = {},
) {
  const values = { taskId, type, message, attempt: extra.attempt, data: extra.data };
  const kind = extra.notify ? notificationFor(type, extra.data) : null;
  if (!kind) {
    const [row] = await db.insert(taskEvents).values(values).returning();
    return row!;
  }
  return db.transaction(async (tx) => {
    const [row] = await tx.insert(taskEvents).values(values).returning();
    await enqueueNotification(tx as unknown as Db, row!, kind);
    return row!;
  });
}

export async function listEvents(db: Db, taskId: string, limit: number) {
  const rows = await db
    .select()
    .from(taskEvents)
    .where(eq(taskEvents.taskId, taskId))
    .orderBy(desc(taskEvents.id))
    .limit(limit);
  return rows.reverse();
}

export async function listAttempts(db: Db, taskId: string) {
  return db
    .select()
    .from(attempts)
    .where(eq(attempts.taskId, taskId))
    .orderBy(desc(attempts.number));
}

export async function listMetrics(db: Db, taskId: string, limit: number) {
  return db
    .select()
    .from(taskMetrics)
    .where(eq(taskMetrics.taskId, taskId))
    .orderBy(taskMetrics.step, taskMetrics.id)
    .limit(limit);
}

export async function deleteTask(db: Db, id: string, allowedFrom: TaskStatus[]) {
  const rows = await db
    .delete(tasks)
    .where(and(eq(tasks.id, id), inArray(tasks.status, allowedFrom)))
    .returning({ id: tasks.id });
  return rows.length > 0;
}

/** Where a queued task stands in the queue (1 = next), by the order the scheduler uses. */
export async function queuePositionOf(db: Db, task: TaskRow): Promise<number> {
  if (!task.queuedAt) return 1;
  const [row] = await db
    .select({ n: count() })
    .from(tasks)
    .where(
      and(
        eq(tasks.status, "queued"),
        or(
          lt(tasks.queuedAt, task.queuedAt),
          and(eq(tasks.queuedAt, task.queuedAt), lt(tasks.id, task.id)),
        ),
      ),
    );
  return (row?.n ?? 0) + 1;
}

/**
 * Automatic runs of one kind ("auto-retry": the retry policy; "rolled-back": the divergence
 * watchdog) since a person last queued the task: its events of that type in a row.
 */
export async function automaticRunsInARow(
  db: Db,
  taskId: string,
  kind: "auto-retry" | "rolled-back",
): Promise<number> {
  const rows = await db
    .select({ type: taskEvents.type })
    .from(taskEvents)
    .where(and(eq(taskEvents.taskId, taskId), inArray(taskEvents.type, ["queued", kind])))
    .orderBy(desc(taskEvents.id))
    .limit(101);
  const firstByPerson = rows.findIndex((r) => r.type === "queued");
  return firstByPerson === -1 ? rows.length : firstByPerson;
}

/** Whether the attempt has an event of this type (a watchdog that spoke before a restart). */
export async function attemptHasEvent(
  db: Db,
  taskId: string,
  attempt: number,
  type: string,
): Promise<boolean> {
  const [row] = await db
    .select({ id: taskEvents.id })
    .from(taskEvents)
    .where(
      and(
        eq(taskEvents.taskId, taskId),
        eq(taskEvents.attempt, attempt),
        eq(taskEvents.type, type),
      ),
    )
    .limit(1);
  return row !== undefined;
}
