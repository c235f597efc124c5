import type { FailureCauseKind } from "./failure-cause";

/**
 * Whether a failed attempt is tried again by itself, pure. Only failures of the world around
 * the trainer are retried (killed by a signal the studio did not send, its runner gone, a full
 * disk: the launch waits for space), from the last checkpoint when there is one, with a
 * doubling wait, at most `limit` times in a row. A failure the same settings would repeat
 * (configuration, data, a trainer error, divergence, out of memory at the same batch size, an
 * unexplained exit code) is never retried blindly, and a run that keeps failing stops and says so.
 * Out of memory is retried when the person allows a smaller batch: from the start (a checkpoint
 * holds where the data loader stood in batches of the old size), at half the batch size.
 */

export interface RetryPolicy {
  /** Automatic retries in a row; 0 turns them off. */
  limit: number;
  /** The first wait; each further retry in a row waits twice as long (at most an hour). */
  backoffSeconds: number;
  /** Out of memory: retry at half the batch size. */
  oomSmallerBatch: boolean;
}

/** A failure's cause as the reconciler knows it: a named cause, or the runner gone. */
export type RetryCause = FailureCauseKind | "runner-lost";

export interface RetryInput {
  cause: RetryCause;
  /** Automatic retries since the last one a person asked for. */
  retriesSoFar: number;
  hasCheckpoint: boolean;
  /** The batch size the failed attempt ran with. */
  batchSize: number;
}

export type RetryDecision =
  | {
      retry: true;
      delayMs: number;
      fromCheckpoint: boolean;
      message: string;
      /** The smaller batch size to run with (out of memory). */
      batchSize?: number;
    }
  | { retry: false; message: string | null };

const RETRIED: readonly RetryCause[] = ["killed", "runner-lost", "disk-full"];
const MAX_DELAY_MS = 3_600_000;

const WHY_NOT: Partial<Record<RetryCause, string>> = {
  "out-of-memory":
    "out of memory would happen again at the same batch size; lower it and retry (or allow STUDIO_RETRY_OOM_SMALLER_BATCH)",
  "config-error": "a configuration error would happen again; fix the settings and retry",
  "data-error": "a data error would happen again; fix the dataset and retry",
  "trainer-bug": "a trainer error would likely happen again",
  diverged: "a run that diverged would likely diverge again; lower the learning rate and retry",
  exited: "the exit code does not say the failure came from outside the trainer",
  "time-limit": "it reached its maximum run time",
};

export function retryDecision(input: RetryInput, policy: RetryPolicy): RetryDecision {
  if (policy.limit === 0) return { retry: false, message: null };
  const smallerBatch = input.cause === "out-of-memory" && policy.oomSmallerBatch;
  if (smallerBatch && input.batchSize <= 1) {
    return {
      retry: false,
      message: "not retried automatically: out of memory at batch size 1, nothing smaller to try",
    };
  }
  if (!RETRIED.includes(input.cause) && !smallerBatch) {
    return {
      retry: false,
      message: `not retried automatically: ${WHY_NOT[input.cause] ?? input.cause}`,
    };
  }
  if (input.retriesSoFar >= policy.limit) {
    return {
      retry: false,
      message: `stopped retrying automatically: it failed ${input.retriesSoFar + 1} times in a row (the limit is ${policy.limit} retries)`,
    };
  }
  const delayMs = Math.min(MAX_DELAY_MS, policy.backoffSeconds * 1000 * 2 ** input.retriesSoFar);
  const count = `${input.retriesSoFar + 1} of ${policy.limit}`;
  if (smallerBatch) {
    const batchSize = Math.floor(input.batchSize / 2);
    return {
      retry: true,
      delayMs,
      fromCheckpoint: false,
      batchSize,
      message: `retrying automatically in ${Math.round(delayMs / 1000)} s (${count}) from the start at batch size ${batchSize}: out of memory at batch size ${input.batchSize}`,
    };
  }
  return {
    retry: true,
    delayMs,
    fromCheckpoint: input.hasCheckpoint,
    message: `retrying automatically in ${Math.round(delayMs / 1000)} s (${count})${input.hasCheckpoint ? " from the last checkpoint" : ""}`,
  };
}
