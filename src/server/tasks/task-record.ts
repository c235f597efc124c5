import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../../platform/atomic-write";
import { evaluationSetSchema } from "../../shared/evaluation-set";
import { taskLimitsSchema } from "../../shared/task-input";
import {
  datasetFormatSchema,
  hyperparametersSchema,
  TASK_RECORD_FILE,
  trainerKindSchema,
} from "../../trainers/protocol";
import type { TaskRow } from "../db/schema";

/**
 * `task.json`: what a person asked for when creating the task, written into its folder at
 * create. With it the folder alone says everything the task row was made from, so a database
 * that lost the task can rebuild it (src/server/recovery). config.json says what one attempt
 * ran; this says what the task is (its name, GPUs asked for, when it was created), which no
 * attempt's config.json holds.
 */
export { TASK_RECORD_FILE };

/**
 * 1: the first format. 2: adds the resource limits ({} when read from a version 1 record).
 * 3: adds the evaluation set (null when read from an older record). Rewritten when the set is
 * attached or detached later.
 */
export const TASK_RECORD_VERSION = 3;

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "not a date");

export const taskRecordSchema = z.object({
  version: z.number().int().min(1).max(TASK_RECORD_VERSION),
  id: z.string(),
  name: z.string().min(1).max(120),
  model: z.string().min(1).max(300),
  trainer: trainerKindSchema,
  mode: z.enum(["lora", "pretrain"]),
  dataset: z.object({ path: z.string().min(1), format: datasetFormatSchema }),
  hyperparameters: hyperparametersSchema,
  command: z.array(z.string()).nullable(),
  gpusRequested: z.number().int().min(0).max(64),
  limits: taskLimitsSchema.default({}),
  evaluationSet: evaluationSetSchema.nullable().default(null),
  createdAt: isoTime,
});
export type TaskRecord = z.infer<typeof taskRecordSchema>;
/** A task.json of any version this studio reads, as written. */
export type StoredTaskRecord = z.input<typeof taskRecordSchema>;

export function taskRecordOf(row: TaskRow): TaskRecord {
  return {
    version: TASK_RECORD_VERSION,
    id: row.id,
    name: row.name,
    model: row.model,
    trainer: row.trainer,
    mode: row.mode,
    dataset: { path: row.datasetPath, format: row.datasetFormat },
    hyperparameters: row.hyperparameters,
    command: row.command ?? null,
    gpusRequested: row.gpusRequested,
    limits: row.limits ?? {},
    evaluationSet: row.evaluationSet ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}

/** Creates the task's folder with its task.json (atomically: a reader sees all of it or none). */
export function writeTaskRecord(taskDir: string, record: TaskRecord): void {
  mkdirSync(taskDir, { recursive: true });
  writeJsonAtomic(join(taskDir, TASK_RECORD_FILE), record);
}
