import { z } from "zod";

/**
 * Why the studio itself stopped a running trainer (a watchdog acting), stored on the task with
 * its cancel request: the attempt then ends as failed for this reason rather than as cancelled,
 * and the rollback it names (if any) is carried out once the trainer has stopped. Stored as
 * jsonb; `version` says which shape, so an upgraded studio reads what an older one wrote.
 */
export const STOP_REQUEST_VERSION = 1;

export const stopRequestSchema = z.object({
  version: z.literal(STOP_REQUEST_VERSION),
  cause: z.literal("diverged"),
  /** The failure reason the attempt ends with: what was seen and what was done. */
  reason: z.string(),
  /** Run again from this checkpoint at this peak learning rate; null: stop for good. */
  rollback: z
    .object({ step: z.number().int().min(0), path: z.string(), learningRate: z.number() })
    .nullable(),
});
export type StopRequest = z.infer<typeof stopRequestSchema>;

/** The stored stop request, or null when there is none or it is not one this studio reads. */
export function readStopRequest(value: unknown): StopRequest | null {
  const parsed = stopRequestSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
