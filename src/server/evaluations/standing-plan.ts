import type { EvalStatus } from "../../trainers/evaluate/eval-state";

/**
 * What the standing evaluation of one task does next (pure): the task's evaluation set scores
 * every checkpoint once, one evaluation at a time. Decided from what is on disk: the checkpoints
 * (in checkpoints/ or kept for scoring), the standing records and how each is judged now.
 *
 * - A checkpoint with no record for the current set is queued (its weights kept, a "queued"
 *   record written under the id the set and checkpoint give, so it is never queued twice).
 * - When no standing evaluation of the task runs, the queued one of the lowest step starts.
 * - One whose evaluator died (killed, the machine restarted, never started) is queued again, up
 *   to MAX_STANDING_TRIES in all; then it fails for good, saying so. A studio restart does not
 *   kill evaluators: their records are followed as they were.
 * - A queued one of a set no longer attached fails, saying why; one running finishes.
 * - Kept weights no queued or running evaluation needs are released.
 */

export const MAX_STANDING_TRIES = 3;

/** A standing record as written, and as judged now. */
export interface StandingRecord {
  id: string;
  /** The checkpoint's folder name (step-20, checkpoint-46). */
  checkpoint: string;
  step: number | null;
  /** The pinned copy of the set it scores on. */
  setPath: string;
  written: "queued" | "running" | "done" | "failed";
  judged: EvalStatus;
  tries: number;
}

export interface StandingInput {
  /** The set attached now (its pinned path), or null. */
  setPath: string | null;
  /** Checkpoints whose weights are there: in checkpoints/, or kept for scoring. */
  checkpoints: { name: string; step: number | null }[];
  /** Names under eval/checkpoints/. */
  kept: string[];
  records: StandingRecord[];
  /** The record id of a checkpoint under the current set (standingEvalId). */
  idOf: (setPath: string, name: string) => string;
}

export type StandingAction =
  | { kind: "queue"; id: string; name: string; step: number | null }
  | { kind: "requeue"; id: string; tries: number }
  | { kind: "give-up"; id: string; reason: string }
  | { kind: "drop"; id: string; reason: string }
  | { kind: "launch"; id: string }
  | { kind: "release"; name: string };

export function planStanding(input: StandingInput): StandingAction[] {
  const actions: StandingAction[] = [];
  const { setPath } = input;
  /** Waiting for its turn after this pass: id, checkpoint, step. */
  const waiting: { id: string; name: string; step: number | null }[] = [];
  const needed = new Set<string>();
  let running = false;

  for (const record of input.records) {
    const current = setPath !== null && record.setPath === setPath;
    if (record.written === "queued") {
      if (!current) {
        actions.push({
          kind: "drop",
          id: record.id,
          reason:
            setPath === null
              ? "not scored: the evaluation set was detached before its turn"
              : "not scored: the task's evaluation set was replaced before its turn",
        });
        continue;
      }
      waiting.push({ id: record.id, name: record.checkpoint, step: record.step });
      needed.add(record.checkpoint);
      continue;
    }
    if (record.judged.state === "running") {
      running = true;
      needed.add(record.checkpoint);
      continue;
    }
    // Written "running" but judged failed: its evaluator is gone without a word.
    if (record.written === "running" && record.judged.state === "failed") {
      if (record.tries < MAX_STANDING_TRIES && current) {
        actions.push({ kind: "requeue", id: record.id, tries: record.tries + 1 });
        waiting.push({ id: record.id, name: record.checkpoint, step: record.step });
        needed.add(record.checkpoint);
      } else {
        const tried = record.tries === 1 ? "once" : `${record.tries} times`;
        actions.push({
          kind: "give-up",
          id: record.id,
          reason: current
            ? `${record.judged.reason}; tried ${tried}, not tried again`
            : `${record.judged.reason}; not tried again: the task's evaluation set changed`,
        });
      }
    }
  }

  if (setPath !== null) {
    const known = new Set(input.records.map((r) => r.id));
    for (const checkpoint of input.checkpoints) {
      const id = input.idOf(setPath, checkpoint.name);
      if (known.has(id)) continue;
      known.add(id);
      actions.push({ kind: "queue", id, name: checkpoint.name, step: checkpoint.step });
      waiting.push({ id, name: checkpoint.name, step: checkpoint.step });
      needed.add(checkpoint.name);
    }
  }

  if (!running && waiting.length > 0) {
    const next = [...waiting].sort(byStep)[0]!;
    actions.push({ kind: "launch", id: next.id });
  }
  for (const name of input.kept) {
    if (!needed.has(name)) actions.push({ kind: "release", name });
  }
  return actions;
}

/** Lowest step first (a name with no step last), then by name. */
function byStep(
  a: { name: string; step: number | null },
  b: { name: string; step: number | null },
) {
  const sa = a.step ?? Number.MAX_SAFE_INTEGER;
  const sb = b.step ?? Number.MAX_SAFE_INTEGER;
  return sa !== sb ? sa - sb : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
