import { join } from "node:path";
import { hfPeftScriptPath } from "../launch";
import type { ServerPrograms } from "../playground/server-command";
import { EVAL_LIMITS, type EvalRecord } from "./eval-record";

/**
 * A standing evaluation (the task's evaluation set scoring a checkpoint) runs beside the
 * training: at the priority its record names (`niceness`: the studio's STUDIO_EVAL_NICENESS, 19
 * unless set), so the trainer keeps its CPU, and on one thread.
 */
const ONE_THREAD = { STUDIO_BUILTIN_THREADS: "1", OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };

/** The environment of the evaluation program (pure): the evaluator's, one thread when standing. */
export function evaluationEnv(
  record: Pick<EvalRecord, "origin">,
  env: Record<string, string | undefined>,
): Record<string, string | undefined> {
  return record.origin === "standing" ? { ...env, ...ONE_THREAD } : env;
}

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
