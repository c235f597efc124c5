/**
 * The divergence watchdog's arithmetic, pure. A run has diverged when its training loss is not a
 * number (NaN or infinite: once is enough, the weights are lost) or when it spikes: `patience`
 * reports in a row over `spikeFactor` times the median of the reports before them (one bad batch
 * is noise; several in a row is a run blowing up). Nothing is judged on spikes before `warmup`
 * finite reports, while the loss is still settling.
 *
 * The watch lives in the attempt's progress (so a studio restart keeps it) and also keeps the
 * checkpoints the attempt reported, so a rollback can pick the newest one from before the
 * trouble began.
 */

export interface LossWatch {
  /** The latest finite training losses, oldest first (at most KEPT_LOSSES). */
  losses: { step: number; loss: number }[];
  /** The first training loss of the attempt that was not a number. */
  nonFinite: { step: number; value: "nan" | "inf" | "-inf" } | null;
  /** Checkpoints of the attempt (and the one it resumed from), oldest first (at most KEPT_CHECKPOINTS). */
  checkpoints: { step: number; path: string }[];
}

export interface DivergencePolicy {
  spikeFactor: number;
  patience: number;
  warmup: number;
}

export type DivergenceVerdict =
  | { diverged: false }
  | {
      diverged: true;
      /** The first step that was bad. */
      step: number;
      /** The last step whose loss was still good (null: none was seen). */
      lastGoodStep: number | null;
      /** What was seen, in words: the evidence the event and the failure reason quote. */
      evidence: string;
    };

const KEPT_LOSSES = 32;
const KEPT_CHECKPOINTS = 16;

export function emptyLossWatch(resumedFrom: { step: number; path: string } | null): LossWatch {
  return { losses: [], nonFinite: null, checkpoints: resumedFrom ? [resumedFrom] : [] };
}

/** One training loss report: a number, or NaN/±Infinity as the trainer or its log said. */
export function observeLoss(watch: LossWatch, step: number, loss: number): LossWatch {
  if (!Number.isFinite(loss)) {
    if (watch.nonFinite) return watch;
    const value = Number.isNaN(loss) ? "nan" : loss > 0 ? "inf" : "-inf";
    return { ...watch, nonFinite: { step, value } };
  }
  const last = watch.losses.at(-1);
  // The same step again (a log line and an event for one step): the later report wins.
  const kept = last && last.step >= step ? watch.losses.filter((l) => l.step < step) : watch.losses;
  return { ...watch, losses: [...kept, { step, loss }].slice(-KEPT_LOSSES) };
}

export function observeCheckpoint(watch: LossWatch, step: number, path: string): LossWatch {
  const others = watch.checkpoints.filter((c) => c.path !== path);
  return { ...watch, checkpoints: [...others, { step, path }].slice(-KEPT_CHECKPOINTS) };
}

export function divergenceVerdict(watch: LossWatch, policy: DivergencePolicy): DivergenceVerdict {
  const spike = spikeRun(watch.losses, policy);
  if (watch.nonFinite && (!spike || watch.nonFinite.step <= spike.step)) {
    const { step, value } = watch.nonFinite;
    const good = watch.losses.filter((l) => l.step < step).at(-1);
    return {
      diverged: true,
      step,
      lastGoodStep: good?.step ?? null,
      evidence: `the training loss became ${value === "nan" ? "NaN" : value === "inf" ? "infinite" : "-infinite"} at step ${step}`,
    };
  }
  return spike ? { diverged: true, ...spike } : { diverged: false };
}

/**
 * The first run of `patience` losses all over spikeFactor × the median of the ones before them,
 * as a studio that judged after every report would have found it. The studio looks only now and
 * then (a busy machine or a batch of reports may put many steps between two looks); judged from
 * the latest reports alone, a late look took the median of reports that were already spikes and
 * placed the start of the trouble, and the rollback's checkpoint, after steps that were bad.
 */
function spikeRun(losses: LossWatch["losses"], policy: DivergencePolicy) {
  const patience = Math.max(1, policy.patience);
  for (let end = policy.warmup + patience; end <= losses.length; end++) {
    const before = losses.slice(0, end - patience);
    const run = losses.slice(end - patience, end);
    const sorted = before.map((l) => l.loss).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const limit = policy.spikeFactor * median;
    if (!(median > 0) || run.some((l) => l.loss <= limit)) continue;
    const first = run[0]!;
    const latest = losses.at(-1)!;
    return {
      step: first.step,
      lastGoodStep: before.at(-1)?.step ?? null,
      evidence: `the training loss spiked: ${format(latest.loss)} at step ${latest.step}, over ${policy.spikeFactor}× the recent median of ${format(median)} since step ${first.step}`,
    };
  }
  return null;
}

/** The newest reported checkpoint from before the first bad step, if any. */
export function rollbackTarget(
  watch: LossWatch,
  verdict: Extract<DivergenceVerdict, { diverged: true }>,
): { step: number; path: string } | null {
  // A checkpoint saved at the last good step holds weights from before the first bad update.
  const limit = verdict.lastGoodStep ?? -1;
  const candidates = watch.checkpoints.filter((c) => c.step <= limit);
  return candidates.sort((a, b) => a.step - b.step).at(-1) ?? null;
}

function format(loss: number): string {
  return Number(loss.toPrecision(4)).toString();
}
