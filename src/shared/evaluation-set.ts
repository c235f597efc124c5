import { z } from "zod";
import { datasetFormatSchema } from "../trainers/protocol";

/**
 * A task's evaluation set: held-out data every checkpoint the task writes is scored on, once
 * each, by a standing evaluation (src/server/evaluations). Attached at create or later, stored
 * with the task (its row and task.json). `path` is a copy pinned under its content hash when it
 * was attached, so every checkpoint is scored on the same rows. `version` says which shape, so
 * an upgraded studio reads what an older one wrote; a newer one is refused by name.
 */
export const EVALUATION_SET_VERSION = 1;

export const evaluationSetSchema = z.object({
  version: z.literal(EVALUATION_SET_VERSION, {
    error: (issue) =>
      `evaluation set version ${JSON.stringify(issue.input)} is not one this studio reads (it reads ${EVALUATION_SET_VERSION})`,
  }),
  /** The stored dataset it was attached from, and its name, for people. */
  datasetId: z.string().min(1).max(200),
  name: z.string().min(1).max(300),
  /** The pinned copy every checkpoint is scored on. */
  path: z.string().min(1).max(4096),
  format: datasetFormatSchema,
  /** ISO 8601 */
  attachedAt: z.string(),
});
export type EvaluationSet = z.infer<typeof evaluationSetSchema>;
