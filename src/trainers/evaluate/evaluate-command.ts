import { join } from "node:path";
import { hfPeftScriptPath } from "../launch";
import type { ServerPrograms } from "../playground/server-command";
import { EVAL_LIMITS, type EvalRecord } from "./eval-record";

/** How a trainer's evaluation program is started (pure): the built-in program or evaluate.py. */
export function evaluateCommand(
  record: Pick<EvalRecord, "trainer" | "dataset">,
  programs: ServerPrograms,
  where: { taskDir: string; source: string },
): { file: string; args: string[] } {
  const args = [
    "--task-dir",
    where.taskDir,
    "--source",
    where.source,
    "--dataset",
    record.dataset.path,
    "--format",
    record.dataset.format,
  ];
  if (record.trainer === "builtin") {
    return {
      file: programs.nodePath,
      args: [join(programs.distDir, "builtin-trainer.js"), "evaluate", ...args],
    };
  }
  if (!programs.pythonPath) throw new Error("an hf-peft evaluation needs its interpreter");
  const limits = [
    "--loss-rows",
    String(EVAL_LIMITS.lossRows),
    "--generation-rows",
    String(EVAL_LIMITS.generationRows),
    "--samples",
    String(EVAL_LIMITS.samples),
  ];
  return {
    file: programs.pythonPath,
    args: [hfPeftScriptPath(programs.distDir, "evaluate.py"), ...args, ...limits],
  };
}
