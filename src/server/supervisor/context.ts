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
  log: (msg: string) => void;
}

export interface TaskEventInput {
  type: string;
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
  const ev = event
    ? await addEvent(ctx.db, row.id, event.type, event.message, {
        attempt: event.attempt,
        data: event.data,
      })
    : undefined;
  ctx.bus.publishTask({ ...row, event: ev });
}

/** Records an event about a task whose row did not change (a warning, a note). */
export async function note(
  ctx: SupervisorContext,
  taskId: string,
  event: TaskEventInput,
): Promise<void> {
  await publish(ctx, await getTask(ctx.db, taskId), event);
}
