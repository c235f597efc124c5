import type { TaskEventType } from "../../shared/task-event-types";
import type { DatasetStore } from "../datasets/store";
import type { Db } from "../db/client";
import type { TaskRow } from "../db/schema";
import type { Env } from "../env";
import type { StudioBus } from "../events/bus";
import type { HfPeftReadiness } from "../hf-peft-readiness";
import { taskDir } from "../home";
import { addEvent, getTask } from "../tasks/repository";
import type { Executor } from "./executor";

/** What every part of the supervisor works with: settings, the database, the bus, the executor, the datasets. */
export interface SupervisorContext {
  env: Env;
  db: Db;
  bus: StudioBus;
  executor: Executor;
  /** Where datasets are pinned: every launch checks the task's pinned copy again. */
  datasets: DatasetStore;
  /** The hf-peft trainer's interpreter, and whether it can run (checked before queueing). */
  hfPeft: HfPeftReadiness;
  /** Where people open this studio, for the links notifications carry. */
  publicUrl: string;
  log: (msg: string) => void;
}

export interface TaskEventInput {
  type: TaskEventType;
  message: string;
  attempt?: number;
  data?: Record<string, unknown>;
}

/** Where a task's files are: the folder stored with it, else (older rows) under this home. */
export function taskFolder(ctx: SupervisorContext, task: Pick<TaskRow, "id" | "folder">): string {
  return task.folder ?? taskDir(ctx.env.STUDIO_HOME, task.id);
}

/** Records the event (when given) and tells subscribers about the task's new row. */
export async function publish(
  ctx: SupervisorContext,
  row: TaskRow | undefined,
  event?: TaskEventInput,
): Promise<void> {
  if (!row) return;
  const ev = event ? await recordEvent(ctx, ctx.db, row.id, event) : undefined;
  ctx.bus.publishTask({ ...row, event: ev });
}

/**
 * A status write and the event that tells of it, in one transaction (the event's notification
 * with them, see `addEvent`): a studio killed between the two cannot leave a task ended with no
 * event and no notification, and a write the database refuses leaves nothing half done. `write`
 * returns the changed row, or undefined when it changed nothing (no event then). Subscribers
 * hear of it once it is committed.
 */
export async function writeWithEvent(
  ctx: SupervisorContext,
  write: (tx: Db) => Promise<TaskRow | undefined>,
  event: TaskEventInput,
): Promise<TaskRow | undefined> {
  const done = await ctx.db.transaction(async (tx) => {
    const row = await write(tx as unknown as Db);
    return row ? { row, event: await recordEvent(ctx, tx as unknown as Db, row.id, event) } : null;
  });
  if (done) ctx.bus.publishTask({ ...done.row, event: done.event });
  return done?.row;
}

function recordEvent(ctx: SupervisorContext, db: Db, taskId: string, event: TaskEventInput) {
  return addEvent(db, taskId, event.type, event.message, {
    attempt: event.attempt,
    data: event.data,
    notify: ctx.env.STUDIO_WEBHOOK_URL !== undefined,
  });
}

/** Records an event about a task whose row did not change (a warning, a note). */
export async function note(
  ctx: SupervisorContext,
  taskId: string,
  event: TaskEventInput,
): Promise<void> {
  await publish(ctx, await getTask(ctx.db, taskId), event);
}
