import { join } from "node:path";
import { runnerArgv } from "../../runner/args";
import type { ResourceLimits } from "../../runner/resource-limits";

/**
 * How an attempt becomes a Slurm batch job. Pure: the script text, sbatch's argv and its
 * environment. No argument is ever written into the script: sbatch hands the words after the
 * script's path to the script as "$@" (stored by slurmctld as an argv array), and the script
 * execs them. So a task folder or a trainer argument with spaces, quotes, `$(...)` or newlines
 * reaches the runner byte for byte, and no shell ever parses it.
 */

/** The batch script: the same runner as on the local executor, as the job's only process. */
export const BATCH_SCRIPT = `#!/bin/bash
# Written by Finetune Studio. Runs the attempt's runner (node runner.js --task-dir ... -- trainer ...),
# which writes runner.json and exit.json into the task folder; its argv comes from sbatch's
# command line, never from this text.
exec "$@"
`;

export interface SlurmJobSpec {
  taskDir: string;
  attempt: number;
  command: { file: string; args: string[] };
  /**
   * Memory and CPUs are Slurm's to enforce (`--mem`, `--cpus-per-task`: it owns the node's
   * control groups); the run-time limit and priority are kept by the runner as elsewhere.
   */
  limits?: ResourceLimits;
}

export interface SlurmSubmitOptions {
  /** Node on the compute nodes (the same path as here on a shared install). */
  nodePath: string;
  /** dist/runner.js, on a folder every compute node sees. */
  runnerPath: string;
  partition?: string;
  /** GPUs for the job, requested as `--gres=gpu:<n>`; Slurm then sets CUDA_VISIBLE_DEVICES. */
  gpus: number;
  /** sbatch `--time`, e.g. "2-00:00:00"; the partition's default when absent. */
  timeLimit?: string;
  /** Further sbatch options from the operator (e.g. `--account=ml`), passed as separate words. */
  extraArgs?: string[];
}

export function batchScriptPath(taskDir: string, attempt: number): string {
  return join(taskDir, `slurm-attempt-${attempt}.sh`);
}

/** Where Slurm writes what the batch script itself prints (the trainer writes to training.log). */
export function batchOutputPath(taskDir: string, attempt: number): string {
  return join(taskDir, `slurm-attempt-${attempt}.out`);
}

/**
 * A name that finds the job again when the studio died between `sbatch` and recording the job
 * id. The task folder's name is the task id; characters Slurm or squeue's output would trip on
 * are replaced.
 */
export function jobName(taskDir: string, attempt: number): string {
  const taskId = taskDir.replace(/\/+$/, "").split("/").pop() ?? "task";
  return `studio-${taskId.replace(/[^A-Za-z0-9_.-]/g, "_")}-a${attempt}`;
}

/** sbatch's argv: options, the script, then the runner's argv as the script's arguments. */
export function sbatchArgv(spec: SlurmJobSpec, options: SlurmSubmitOptions): string[] {
  // Slurm expands %j, %u, ... in --output; a studio task folder never holds '%', so refuse
  // one rather than write somewhere unexpected.
  if (spec.taskDir.includes("%")) {
    throw new Error(`a task folder for Slurm must not contain '%': ${spec.taskDir}`);
  }
  if (!Number.isInteger(options.gpus) || options.gpus < 0) {
    throw new Error(`gpus must be a whole number >= 0, got ${options.gpus}`);
  }
  return [
    "--parsable",
    // One attempt is one run: a requeued job would run the runner a second time under the same
    // attempt. The studio's retry makes a new attempt instead.
    "--no-requeue",
    `--job-name=${jobName(spec.taskDir, spec.attempt)}`,
    `--chdir=${spec.taskDir}`,
    `--output=${batchOutputPath(spec.taskDir, spec.attempt)}`,
    // The environment sbatch runs in (see sbatchEnv) is the job's, exactly.
    "--export=ALL",
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.gpus > 0 ? [`--gres=gpu:${options.gpus}`] : []),
    ...(options.timeLimit ? [`--time=${options.timeLimit}`] : []),
    ...(spec.limits?.memoryMb !== undefined ? [`--mem=${spec.limits.memoryMb}M`] : []),
    ...(spec.limits?.cpus !== undefined ? [`--cpus-per-task=${Math.ceil(spec.limits.cpus)}`] : []),
    ...(options.extraArgs ?? []),
    batchScriptPath(spec.taskDir, spec.attempt),
    options.nodePath,
    options.runnerPath,
    ...runnerArgv({
      taskDir: spec.taskDir,
      attempt: spec.attempt,
      // The runner stays in the job: Slurm tracks, signals and accounts for it. Slurm signals
      // the batch step's process group (scancel --signal, scontrol suspend/resume), so the
      // trainer stays in that group to receive them; the runner itself ignores SIGTERM.
      daemonize: false,
      shareGroup: true,
      limits: { maxRunSeconds: spec.limits?.maxRunSeconds, nice: spec.limits?.nice },
      file: spec.command.file,
      args: spec.command.args,
    }),
  ];
}

/**
 * sbatch's environment, which `--export=ALL` hands to the job: the trainer's environment (the
 * whole of it, as the local executor gives its runner) and SLURM_CONF, which tells sbatch
 * which cluster to use. Dropped: SBATCH_* and other SLURM_* variables (input variables sbatch
 * would obey, or the studio's own job when it runs inside one) and CUDA_VISIBLE_DEVICES
 * (Slurm assigns GPUs through --gres and sets it on the node).
 */
export function sbatchEnv(
  trainerEnv: Readonly<Record<string, string>>,
  slurmConf: string | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(trainerEnv)) {
    if (key === "CUDA_VISIBLE_DEVICES" || key.startsWith("SLURM_") || key.startsWith("SBATCH_")) {
      continue;
    }
    env[key] = value;
  }
  if (slurmConf) env.SLURM_CONF = slurmConf;
  return env;
}
