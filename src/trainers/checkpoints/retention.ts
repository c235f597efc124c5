/**
 * Which checkpoints stay once a new one is verified: the last `keepLast` of the run (the new
 * one included), and the one with the lowest eval loss when the run evaluates. A checkpoint
 * with a higher step than the new one belongs to an earlier attempt that went further before
 * this run started again from an earlier point (a fresh start, or a resume that fell back): it is
 * not on this run's path, and resuming must never take it for this run's latest, so it goes.
 * Pure: the caller lists the folder and deletes.
 */

export interface CheckpointEntry {
  /** The folder's name, e.g. "step-100"; one folder per step (see `checkpointStep`). */
  name: string;
  step: number;
  /** From its manifest: the eval loss of its weights; null when not measured or not known. */
  evalLoss: number | null;
}

export interface RetentionPlan {
  keep: string[];
  remove: { name: string; why: string }[];
}

export function planRetention(
  checkpoints: readonly CheckpointEntry[],
  newest: string,
  keepLast: number,
): RetentionPlan {
  const current = checkpoints.find((c) => c.name === newest);
  if (!current) throw new Error(`planRetention: ${newest} is not among the checkpoints`);
  if (!Number.isInteger(keepLast) || keepLast < 1) {
    throw new Error(`planRetention: keepLast must be a positive integer, not ${keepLast}`);
  }
  const onPath = checkpoints.filter((c) => c.step <= current.step).sort((a, b) => b.step - a.step);
  const last = new Set(onPath.slice(0, keepLast).map((c) => c.name));
  let best: CheckpointEntry | null = null;
  for (const c of onPath) {
    if (c.evalLoss === null || !Number.isFinite(c.evalLoss)) continue;
    // Ties go to the later step: as good, and trained longer.
    if (
      best === null ||
      c.evalLoss < best.evalLoss! ||
      (c.evalLoss === best.evalLoss && c.step > best.step)
    ) {
      best = c;
    }
  }
  const keep = new Set(last);
  if (best) keep.add(best.name);

  const remove: RetentionPlan["remove"] = [];
  for (const c of checkpoints) {
    if (keep.has(c.name)) continue;
    remove.push({
      name: c.name,
      why:
        c.step > current.step
          ? `step ${c.step} is past this run's step ${current.step}: left by an earlier attempt that went further`
          : `older than the last ${keepLast}${best ? ` and not the best eval loss (${best.name})` : ""}`,
    });
  }
  return { keep: checkpoints.filter((c) => keep.has(c.name)).map((c) => c.name), remove };
}
