import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { AdamWState } from "./optimizer";
import { readSafetensors, type TensorMap, writeSafetensors } from "./safetensors";

/**
 * A checkpoint holds everything a resumed run needs to continue exactly: the trained weights,
 * the AdamW moments and step, where the data loader stands, and the dropout generator's
 * state. It is written into a temporary folder and renamed into place, so `step-N` either
 * exists complete or not at all.
 */

export const logEntrySchema = z.object({
  step: z.number(),
  epoch: z.number(),
  loss: z.number().optional(),
  learning_rate: z.number().optional(),
  eval_loss: z.number().optional(),
});
export type LogEntry = z.infer<typeof logEntrySchema>;

/** Hugging Face's trainer_state.json fields that tools read. */
export interface TrainerState {
  global_step: number;
  max_steps: number;
  epoch: number;
  num_train_epochs: number;
  log_history: LogEntry[];
}

const resumeStateSchema = z.object({
  step: z.number().int().min(0),
  /** 0-based epoch and batch index of the next batch to train on. */
  epoch_index: z.number().int().min(0),
  batch_index: z.number().int().min(0),
  dropout_rng_state: z.number().int().min(0),
  weights_file: z.string(),
});
export type ResumeState = z.infer<typeof resumeStateSchema>;

export interface Checkpoint {
  resume: ResumeState;
  weights: TensorMap;
  optimizer: AdamWState;
  logHistory: LogEntry[];
}

/** Extra files that belong beside the weights (adapter_config.json in LoRA mode). */
export type ExtraFiles = Record<string, string>;

export function checkpointPath(taskDir: string, step: number): string {
  return join(taskDir, "checkpoints", `step-${step}`);
}

export async function writeTrainerState(dir: string, state: TrainerState): Promise<void> {
  await writeFile(join(dir, "trainer_state.json"), `${JSON.stringify(state, null, 2)}\n`);
}

export async function saveCheckpoint(
  taskDir: string,
  checkpoint: Checkpoint,
  trainerState: TrainerState,
  weightsMetadata: Record<string, string>,
  extraFiles: ExtraFiles,
): Promise<string> {
  const finalDir = checkpointPath(taskDir, checkpoint.resume.step);
  const tempDir = join(
    taskDir,
    "checkpoints",
    `.tmp-step-${checkpoint.resume.step}-${process.pid}`,
  );
  await rm(tempDir, { recursive: true, force: true });
  await mkdir(tempDir, { recursive: true });
  await writeSafetensors(
    join(tempDir, checkpoint.resume.weights_file),
    checkpoint.weights,
    weightsMetadata,
  );
  const moments: TensorMap = new Map();
  for (const [name, data] of checkpoint.optimizer.expAvg) {
    moments.set(`exp_avg.${name}`, { shape: [data.length], data });
  }
  for (const [name, data] of checkpoint.optimizer.expAvgSq) {
    moments.set(`exp_avg_sq.${name}`, { shape: [data.length], data });
  }
  await writeSafetensors(join(tempDir, "optimizer.safetensors"), moments, {
    step: String(checkpoint.optimizer.step),
  });
  await writeFile(join(tempDir, "resume_state.json"), `${JSON.stringify(checkpoint.resume)}\n`);
  await writeTrainerState(tempDir, trainerState);
  for (const [name, content] of Object.entries(extraFiles)) {
    await writeFile(join(tempDir, name), content);
  }
  // A leftover from an earlier attempt that reached the same step is replaced, not merged.
  if (existsSync(finalDir)) await rm(finalDir, { recursive: true, force: true });
  await rename(tempDir, finalDir);
  return finalDir;
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const resume = resumeStateSchema.parse(
    JSON.parse(await readFile(join(dir, "resume_state.json"), "utf8")),
  );
  const weights = (await readSafetensors(join(dir, resume.weights_file))).tensors;
  const moments = await readSafetensors(join(dir, "optimizer.safetensors"));
  const expAvg = new Map<string, Float32Array>();
  const expAvgSq = new Map<string, Float32Array>();
  for (const [key, tensor] of moments.tensors) {
    if (key.startsWith("exp_avg_sq.")) expAvgSq.set(key.slice("exp_avg_sq.".length), tensor.data);
    else if (key.startsWith("exp_avg.")) expAvg.set(key.slice("exp_avg.".length), tensor.data);
  }
  const step = Number(moments.metadata.step);
  if (!Number.isInteger(step)) throw new Error(`${dir}: optimizer.safetensors has no step`);
  const trainerState = z
    .object({ log_history: z.array(logEntrySchema) })
    .parse(JSON.parse(await readFile(join(dir, "trainer_state.json"), "utf8")));
  return {
    resume,
    weights,
    optimizer: { step, expAvg, expAvgSq },
    logHistory: trainerState.log_history,
  };
}
