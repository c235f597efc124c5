import type { Liveness } from "../../platform/identity";
import type { EvalRecord, EvalResults } from "./eval-record";

/**
 * What a person is told about one evaluation (pure). "running" is believed only while the
 * evaluator's identity is alive, or for a grace period before it has recorded one: an evaluator
 * that was killed leaves "running" behind, and that is a failure that says so.
 */

export const EVAL_START_GRACE_MS = 30_000;

interface Known {
  id: string;
  origin: EvalRecord["origin"];
  source: EvalRecord["source"];
  dataset: { id: string; name: string };
  startedAt: string;
}

export type EvalStatus =
  | (Known & { state: "queued" })
  | (Known & { state: "running" })
  | (Known & { state: "done"; finishedAt: string; results: EvalResults })
  | (Known & { state: "failed"; finishedAt: string | null; reason: string });

export function judgeEvaluation(
  record: EvalRecord,
  liveness: Liveness | null,
  now: Date,
): EvalStatus {
  const known: Known = {
    id: record.id,
    origin: record.origin,
    source: record.source,
    dataset: { id: record.dataset.id, name: record.dataset.name },
    startedAt: record.startedAt,
  };
  if (record.state === "done" && record.results) {
    return {
      ...known,
      state: "done",
      finishedAt: record.finishedAt ?? record.startedAt,
      results: record.results,
    };
  }
  if (record.state === "failed" || record.state === "done") {
    return {
      ...known,
      state: "failed",
      finishedAt: record.finishedAt,
      reason: record.reason ?? "the evaluation failed for a reason it did not record",
    };
  }
  if (record.state === "queued") return { ...known, state: "queued" };
  if (record.process === null) {
    if (now.getTime() - Date.parse(record.startedAt) < EVAL_START_GRACE_MS) {
      return { ...known, state: "running" };
    }
    return {
      ...known,
      state: "failed",
      finishedAt: null,
      reason: `the evaluation process did not start within ${EVAL_START_GRACE_MS / 1000} s`,
    };
  }
  if (liveness === "alive") return { ...known, state: "running" };
  return {
    ...known,
    state: "failed",
    finishedAt: null,
    reason: `the evaluation process (pid ${record.process.pid}) ended before it finished${liveness === "other-boot" ? " (the machine restarted)" : ""}`,
  };
}
