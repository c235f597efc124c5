import { eq } from "drizzle-orm";
import { EVALUATION_SET_VERSION, type EvaluationSet } from "../../shared/evaluation-set";
import type { DatasetStore } from "../datasets/store";
import type { Db } from "../db/client";
import { type TaskRow, tasks } from "../db/schema";
import { TaskActionError } from "../supervisor/task-action-error";
import { taskFolderOf } from "./task-model-source";
import { taskRecordOf, writeTaskRecord } from "./task-record";

/**
 * A task's evaluation set (src/shared/evaluation-set.ts): made from a stored dataset, attached
 * at create or later, detached. It is stored in the task's row (what the standing evaluations
 * and the page read) and in its task.json (what a rebuild reads, and what the trainer's
 * checkpoint keeper asks before keeping a checkpoint's weights for scoring).
 */

/** The set a dataset makes: read, validated and pinned under its content hash, as a task's data is. */
export async function evaluationSetOf(
  datasets: DatasetStore,
  dataset: string,
  now: Date,
): Promise<EvaluationSet> {
  const pinned = await datasets.pinForTask(dataset);
  // The name people gave it (an upload's file name), not the stored copy's.
  const byPath = dataset.includes("/") || dataset.includes("\\");
  return {
    version: EVALUATION_SET_VERSION,
    datasetId: dataset,
    name: byPath ? pinned.name : (await datasets.get(dataset)).name,
    path: pinned.path,
    format: pinned.format,
    attachedAt: now.toISOString(),
  };
}

/** Why a task cannot have an evaluation set, or null. */
export function evaluationSetRefusal(trainer: TaskRow["trainer"]): string | null {
  return trainer === "command"
    ? "a custom command's model cannot be loaded by the studio; an evaluation set needs a built-in or hf-peft task"
    : null;
}

/**
 * Attaches `set` to the task (null detaches it): the row, then task.json. When task.json cannot
 * be written the row is put back, so the two never disagree for long.
 */
export async function changeEvaluationSet(
  db: Db,
  home: string,
  task: TaskRow,
  set: EvaluationSet | null,
): Promise<TaskRow> {
  const refusal = evaluationSetRefusal(task.trainer);
  if (refusal) throw new TaskActionError("PRECONDITION_FAILED", `task ${task.id}: ${refusal}`);
  const folder = taskFolderOf(home, task);
  const [row] = await db
    .update(tasks)
    .set({ evaluationSet: set })
    .where(eq(tasks.id, task.id))
    .returning();
  if (!row) throw new TaskActionError("NOT_FOUND", `no task with id ${task.id}`);
  try {
    writeTaskRecord(folder, taskRecordOf(row));
  } catch (err) {
    await db.update(tasks).set({ evaluationSet: task.evaluationSet }).where(eq(tasks.id, task.id));
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `task ${task.id}'s task.json could not be written (${why}); its evaluation set is unchanged`,
    );
  }
  return row;
}
