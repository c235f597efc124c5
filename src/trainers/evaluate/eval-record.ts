import { join } from "node:path";
import { z } from "zod";
import { datasetFormatSchema } from "../protocol";

/**
 * `eval/<id>.json` in the task folder: one evaluation of the task's trained weights (the final
 * adapter or a checkpoint) on a held-out dataset. The studio writes the request; the evaluator
 * (dist/evaluator.js, detached) records that it runs (its identity), then the results or why it
 * failed. The folder keeps every evaluation, so results survive studio restarts.
 */

export const EVAL_FOLDER = "eval";
/** 1: the first format. A reader refuses a newer one by name. */
export const EVAL_RECORD_VERSION = 1;

export const evalIdSchema = z.string().regex(/^[0-9a-f]{16}$/);

/** What an evaluation reads at most: the first rows for loss, fewer for generation. */
export const EVAL_LIMITS = { lossRows: 500, generationRows: 20, samples: 3 } as const;

export const evalResultsSchema = z.object({
  /** Rows whose loss counted, and their tokens. */
  rows: z.number().int().min(0),
  tokens: z.number().int().min(0),
  loss: z.number().nullable(),
  perplexity: z.number().nullable(),
  /** The same on the base model alone, for comparison. */
  baseLoss: z.number().nullable(),
  basePerplexity: z.number().nullable(),
  /** Instruction data only (greedy generation): answers equal to the expected one. */
  exactMatch: z.object({ matched: z.number().int(), total: z.number().int() }).nullable(),
  samples: z.array(z.object({ prompt: z.string(), expected: z.string(), generated: z.string() })),
});
export type EvalResults = z.infer<typeof evalResultsSchema>;

export const evalRecordSchema = z.object({
  version: z.number().int().min(1),
  id: evalIdSchema,
  state: z.enum(["running", "done", "failed"]),
  trainer: z.enum(["builtin", "hf-peft"]),
  /** "." (the final adapter) or checkpoints/<name>. */
  source: z.object({ path: z.string(), step: z.number().int().nullable() }),
  dataset: z.object({
    id: z.string(),
    name: z.string(),
    path: z.string(),
    format: datasetFormatSchema,
  }),
  /** hf-peft: the interpreter the studio runs the trainer with. */
  python: z.string().nullable(),
  process: z
    .object({ bootId: z.string(), pid: z.number().int().min(1), startTime: z.string() })
    .nullable(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  results: evalResultsSchema.nullable(),
  reason: z.string().nullable(),
});
export type EvalRecord = z.infer<typeof evalRecordSchema>;

export function evalRecordPath(taskDir: string, id: string): string {
  return join(taskDir, EVAL_FOLDER, `${id}.json`);
}

export function evalLogPath(taskDir: string, id: string): string {
  return join(taskDir, EVAL_FOLDER, `${id}.log`);
}

export function parseEvalRecord(text: string): EvalRecord {
  const value = JSON.parse(text) as { version?: unknown };
  if (typeof value.version === "number" && value.version > EVAL_RECORD_VERSION) {
    throw new Error(
      `evaluation record version ${value.version} is from a newer studio; this one reads up to ${EVAL_RECORD_VERSION}`,
    );
  }
  return evalRecordSchema.parse(value);
}
