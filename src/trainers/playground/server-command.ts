import { join } from "node:path";
import { hfPeftScriptPath } from "../launch";

/** How a trainer's generation server is started (pure): the built-in program or serve.py. */

export interface ServerPrograms {
  nodePath: string;
  distDir: string;
  /** The hf-peft interpreter; null when the task is not an hf-peft one. */
  pythonPath: string | null;
}

export function serverCommand(
  trainer: "builtin" | "hf-peft",
  programs: ServerPrograms,
  where: { taskDir: string; source: string },
): { file: string; args: string[] } {
  const args = ["--task-dir", where.taskDir, "--source", where.source];
  if (trainer === "builtin") {
    return {
      file: programs.nodePath,
      args: [join(programs.distDir, "builtin-trainer.js"), "serve", ...args],
    };
  }
  if (!programs.pythonPath) throw new Error("an hf-peft generation server needs its interpreter");
  return {
    file: programs.pythonPath,
    args: [hfPeftScriptPath(programs.distDir, "serve.py"), ...args],
  };
}
