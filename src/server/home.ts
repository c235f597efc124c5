import { basename, dirname, join } from "node:path";

/** The layout of STUDIO_HOME (docs/architecture.md: the task folder's files). */
export function studioPaths(home: string) {
  return {
    home,
    tasks: join(home, "tasks"),
    datasets: join(home, "datasets"),
    pglite: join(home, "pglite"),
    lock: join(home, "studio.lock"),
    pidFile: join(home, "studio.pid"),
    log: join(home, "studio.log"),
  };
}
export type StudioPaths = ReturnType<typeof studioPaths>;

export function taskDir(home: string, taskId: string): string {
  return join(home, "tasks", taskId);
}

/**
 * The folder that holds a task's folder: its files are opened from there, and no link may lead
 * out of it. A task started through another studio on the same database (another home) has its
 * folder stored with it; a stored folder must be named after its task.
 */
export function tasksRootOf(home: string, task: { id: string; folder: string | null }): string {
  if (!task.folder) return studioPaths(home).tasks;
  if (basename(task.folder) !== task.id) {
    throw new Error(`task ${task.id}'s stored folder ${task.folder} is not named after it`);
  }
  return dirname(task.folder);
}
