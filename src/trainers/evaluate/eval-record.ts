import { createHash } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import { datasetFormatSchema } from "../protocol";

/**
 * `eval/<id>.json` in the task folder: one evaluation of the task's trained weights (the final
 * adapter or a checkpoint) on a held-out dataset. The studio writes the request; the evaluator
 * (dist/evaluator.js, detached) records that it runs (its identity), then the results or why it
 * failed. The folder keeps every evaluation, so results survive studio restarts.
 *
 * A standing evaluation (the task's evaluation set scoring one checkpoint) has the id
 * `standingEvalId` gives that set and checkpoint, so its record is the one account of whether
 * the checkpoint was scored: written "queued" when the checkpoint is found, "running" when its
 * turn comes, then done or failed, never a second one.
 */

export const EVAL_FOLDER = "eval";
/**
 * 1: the first format. 2: adds `origin`, the "queued" state, `readFrom`, `tries` and
 * `niceness` (a version 1 record was requested by a person, read from its source, tried once, at
 * the evaluator's own priority). A reader refuses a newer version by name.
 */
export const EVAL_RECORD_VERSION = 2;

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
  /** request: a person asked for it; standing: the task's evaluation set scoring a checkpoint. */
  origin: z.enum(["request", "standing"]).default("request"),
  /** queued: a standing evaluation waiting for its turn (one runs at a time per task). */
  state: z.enum(["queued", "running", "done", "failed"]),
  trainer: z.enum(["builtin", "hf-peft"]),
  /** "." (the final adapter) or checkpoints/<name>. */
  source: z.object({ path: z.string(), step: z.number().int().nullable() }),
  /**
   * Where the weights are read, relative to the task folder, when not from `source.path`: the
   * copy kept for a standing evaluation (kept-weights.ts), which outlives the checkpoint.
   */
  readFrom: z.string().nullable().default(null),
  /** How many evaluators were started for it: one that died is started again, a few times. */
  tries: z.number().int().min(1).default(1),
  /** The CPU priority its evaluator lowers itself to before it claims it; null: as started. */
  niceness: z.number().int().min(0).max(19).nullable().default(null),
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

/**
 * The id of the standing evaluation of checkpoint `name` on the evaluation set pinned at
 * `setPath` (pure): the same set and checkpoint always give the same record, so a checkpoint is
 * scored once however many passes, restarts or studios see it.
 */
export function standingEvalId(setPath: string, name: string): string {
  return createHash("sha256").update(`standing\n${setPath}\n${name}`).digest("hex").slice(0, 16);
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
