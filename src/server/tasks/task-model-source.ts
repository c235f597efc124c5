import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  listCheckpoints,
  type ModelSource,
  ModelSourceError,
  resolveModelSource,
} from "../../trainers/playground/model-source";
import type { TaskRow } from "../db/schema";
import { tasksRootOf } from "../home";
import { TaskActionError } from "../supervisor/task-action-error";

/**
 * The trained weights a playground or an evaluation of a task reads, checked: a built-in or
 * hf-peft task whose folder is on this machine, and the final adapter or the named checkpoint
 * there. Every refusal names the task and what to do instead.
 */

export interface TaskModel {
  trainer: "builtin" | "hf-peft";
  taskDir: string;
  source: ModelSource;
  sourceDir: string;
}

export function taskFolderOf(home: string, task: TaskRow): string {
  const dir = join(tasksRootOf(home, task), task.id);
  if (!existsSync(dir)) {
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `task ${task.id}'s folder ${dir} is not on this machine; use the studio that started it`,
    );
  }
  return dir;
}

export async function taskModel(
  home: string,
  task: TaskRow,
  checkpoint: string | null,
): Promise<TaskModel> {
  if (task.trainer !== "builtin" && task.trainer !== "hf-peft") {
    throw new TaskActionError(
      "PRECONDITION_FAILED",
      `task ${task.id} ran a custom command, whose model the studio cannot load; this needs a built-in or hf-peft task`,
    );
  }
  const taskDir = taskFolderOf(home, task);
  const mode = task.trainer === "builtin" ? task.mode : "lora";
  try {
    const source = await resolveModelSource(taskDir, checkpoint, mode);
    return { trainer: task.trainer, taskDir, source, sourceDir: join(taskDir, source.path) };
  } catch (err) {
    if (err instanceof ModelSourceError) {
      throw new TaskActionError(
        checkpoint === null ? "PRECONDITION_FAILED" : "NOT_FOUND",
        `task ${task.id} (${task.status}): ${err.message}`,
      );
    }
    throw err;
  }
}

/** What a person can choose from: the final adapter when there is one, and every checkpoint. */
export async function taskModelChoices(
  home: string,
  task: TaskRow,
): Promise<{ final: boolean; checkpoints: string[] }> {
  if (task.trainer !== "builtin" && task.trainer !== "hf-peft")
    return { final: false, checkpoints: [] };
  const dir = join(tasksRootOf(home, task), task.id);
  const mode = task.trainer === "builtin" ? task.mode : "lora";
  const final = await resolveModelSource(dir, null, mode).then(
    () => true,
    () => false,
  );
  return { final, checkpoints: await listCheckpoints(dir) };
}
