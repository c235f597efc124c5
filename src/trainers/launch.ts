import { join, resolve } from "node:path";
import type { TaskConfig } from "./protocol";

export interface LaunchSettings {
  /** The Node binary that runs the built-in trainer (normally process.execPath). */
  nodePath: string;
  /** The folder of the bundled Node programs (dist/); the Python trainer lives beside it in src/. */
  distDir: string;
  /** The Python interpreter for the hf-peft trainer. */
  pythonPath: string;
  /** Operators opt in to running arbitrary argvs from task configs. */
  allowCommandTrainer: boolean;
  /**
   * The environment the trainer inherits (normally process.env): PATH, HOME, HF_HOME,
   * HF_HUB_OFFLINE and the like. The studio's own secrets are left out of it.
   */
  baseEnv?: Record<string, string | undefined>;
}

/** What the runner execs: a file and its argv (never a shell string) and the whole environment. */
export interface TrainerCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/** Variables of the studio that no trainer needs and a custom command must not see. */
const STUDIO_SECRETS = new Set(["STUDIO_TOKEN", "DATABASE_URL"]);

/** The Python trainer's path, found from the bundles' folder so it works from any install. */
export function hfPeftScriptPath(distDir: string, script = "train.py"): string {
  return resolve(distDir, "..", "src", "trainers", "hf-peft", script);
}

/** Decides how a task's trainer is started; pure, so every kind's argv is tested exactly. */
export function trainerCommand(config: TaskConfig, settings: LaunchSettings): TrainerCommand {
  const env = trainerEnv(config, settings.baseEnv ?? {});
  const taskArgs = ["--task-dir", config.taskDir];
  if (config.resumeFrom !== null) taskArgs.push("--resume-from", config.resumeFrom);

  switch (config.trainer) {
    case "builtin":
      return {
        file: settings.nodePath,
        args: [join(settings.distDir, "builtin-trainer.js"), ...taskArgs],
        env,
      };
    case "hf-peft": {
      const script = hfPeftScriptPath(settings.distDir);
      // train.py keeps its checkpoints through the checkpoint tool, a Node program of the studio.
      env.STUDIO_NODE = settings.nodePath;
      env.STUDIO_CHECKPOINT_TOOL = join(settings.distDir, "checkpoint-tool.js");
      const workers = hfPeftWorkers(config);
      if (workers === 1) {
        return { file: settings.pythonPath, args: [script, ...taskArgs], env };
      }
      // torchrun (through torchrun.py, which keeps every worker in the trainer's process group)
      // with the interpreter the operator chose, so no second PATH lookup can pick another
      // Python; --standalone gives each task its own rendezvous on a free local port.
      return {
        file: settings.pythonPath,
        args: [
          hfPeftScriptPath(settings.distDir, "torchrun.py"),
          "--standalone",
          "--nnodes",
          "1",
          "--nproc_per_node",
          String(workers),
          script,
          ...taskArgs,
        ],
        env,
      };
    }
    case "command": {
      if (!settings.allowCommandTrainer) {
        throw new Error(
          "custom command trainers are disabled; the operator enables them with STUDIO_ALLOW_COMMAND_TRAINER=1",
        );
      }
      const [file, ...args] = config.command ?? [];
      if (!file) throw new Error("a command trainer needs a non-empty argv in config.command");
      // A custom program is run exactly as given: it learns its folder and checkpoint from the
      // environment, since it may refuse arguments it does not know.
      return { file, args, env };
    }
  }
}

/** One process per GPU; on the CPU, as many as the task asks for (gloo). */
export function hfPeftWorkers(config: TaskConfig): number {
  return config.gpus.length > 0 ? config.gpus.length : (config.hyperparameters.processes ?? 1);
}

/** What a program the studio starts inherits: its environment without the studio's secrets. */
export function inheritedEnv(baseEnv: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(baseEnv)) {
    if (value !== undefined && !STUDIO_SECRETS.has(name)) env[name] = value;
  }
  return env;
}

function trainerEnv(
  config: TaskConfig,
  baseEnv: Record<string, string | undefined>,
): Record<string, string> {
  const env = inheritedEnv(baseEnv);
  // An empty list hides every GPU, so a CPU slot never grabs a device another task was given.
  env.CUDA_VISIBLE_DEVICES = config.gpus.join(",");
  env.PYTHONUNBUFFERED = "1";
  env.TOKENIZERS_PARALLELISM = "false";
  env.STUDIO_TASK_DIR = config.taskDir;
  if (config.resumeFrom !== null) env.STUDIO_RESUME_FROM = config.resumeFrom;
  else delete env.STUDIO_RESUME_FROM;
  return env;
}
