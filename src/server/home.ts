import { join } from "node:path";

/** The layout of STUDIO_HOME (see DESIGN.md, "Contracts"). */
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
