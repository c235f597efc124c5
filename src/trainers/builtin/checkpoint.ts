import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { writeFileDurably } from "../checkpoints/folder";
import type { ManifestFile } from "../checkpoints/manifest";
import type { AdamWState } from "./optimizer";
import { encodeSafetensors, readSafetensors, type TensorMap } from "./safetensors";

/**
 * A checkpoint holds everything a resumed run needs to continue exactly: the trained weights,
 * the AdamW moments and step, where the data loader stands, and the dropout generator's
 * state. Where and how it is committed (staged, sealed with a manifest, verified, renamed into
 * place) is the CheckpointKeeper's part (../checkpoints/keeper.ts).
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

export async function writeTrainerState(dir: string, state: TrainerState): Promise<void> {
  await writeFile(join(dir, "trainer_state.json"), trainerStateJson(state));
}

function trainerStateJson(state: TrainerState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/**
 * Writes a checkpoint's files into `dir` (a staging folder: see CheckpointKeeper.commit), each
 * flushed to the device, and returns their manifest entries, hashed from the bytes in memory so
 * that reading the files back verifies what reached the disk.
 */
export async function writeCheckpointFiles(
  dir: string,
  checkpoint: Checkpoint,
  trainerState: TrainerState,
  weightsMetadata: Record<string, string>,
  extraFiles: ExtraFiles,
): Promise<ManifestFile[]> {
  const moments: TensorMap = new Map();
  for (const [name, data] of checkpoint.optimizer.expAvg) {
    moments.set(`exp_avg.${name}`, { shape: [data.length], data });
  }
  for (const [name, data] of checkpoint.optimizer.expAvgSq) {
    moments.set(`exp_avg_sq.${name}`, { shape: [data.length], data });
  }
  const contents: [string, Buffer][] = [
    [checkpoint.resume.weights_file, encodeSafetensors(checkpoint.weights, weightsMetadata)],
    [
      "optimizer.safetensors",
      encodeSafetensors(moments, { step: String(checkpoint.optimizer.step) }),
    ],
    ["resume_state.json", Buffer.from(`${JSON.stringify(checkpoint.resume)}\n`)],
    ["trainer_state.json", Buffer.from(trainerStateJson(trainerState))],
    ...Object.entries(extraFiles).map(([name, text]): [string, Buffer] => [
      name,
      Buffer.from(text),
    ]),
  ];
  const entries: ManifestFile[] = [];
  for (const [name, bytes] of contents) {
    await writeFileDurably(join(dir, name), bytes);
    entries.push({
      path: name,
      size: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    });
  }
  return entries;
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
