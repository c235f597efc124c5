/**
 * The stall watchdog's arithmetic, pure: when a running attempt's steps stop for longer than
 * `factor` times its median step time (and at least `minMs`), it is stalled: a hang at a
 * collective, a dead data loader, a stuck evaluation. Nothing is judged before two steps have
 * been seen (model loading and the first step take what they take) or while the task is paused.
 */

export interface StallPolicy {
  /** Stalled after this many median step times without a new step. */
  factor: number;
  /** Never stalled sooner than this (slow evaluations and checkpoint saves fit in it). */
  minMs: number;
}

export type StallVerdict =
  | { stalled: false }
  | { stalled: true; sinceMs: number; budgetMs: number; medianStepMs: number; step: number };

/** The step times kept for the median: recent enough to follow a run that speeds up or slows down. */
const KEPT = 21;

export class StepClock {
  private seen: { step: number; at: number }[] = [];

  /** Called on every check with the attempt's current step (null: none reported yet). */
  observe(step: number | null, at: number) {
    if (step === null) return;
    const last = this.seen.at(-1);
    if (last && step === last.step) return;
    // A step that went back (a resume from a checkpoint) starts the measurement again.
    if (last && step < last.step) this.seen = [];
    this.seen.push({ step, at });
    if (this.seen.length > KEPT) this.seen.shift();
  }

  /** A pause stops the clock: the time paused is not the trainer's. */
  reset() {
    this.seen = [];
  }

  verdict(now: number, policy: StallPolicy): StallVerdict {
    if (this.seen.length < 2) return { stalled: false };
    const perStep: number[] = [];
    for (let i = 1; i < this.seen.length; i++) {
      const a = this.seen[i - 1]!;
      const b = this.seen[i]!;
      perStep.push((b.at - a.at) / (b.step - a.step));
    }
    perStep.sort((x, y) => x - y);
    const medianStepMs = perStep[Math.floor(perStep.length / 2)]!;
    const last = this.seen.at(-1)!;
    const budgetMs = Math.max(policy.minMs, policy.factor * medianStepMs);
    const sinceMs = now - last.at;
    return sinceMs > budgetMs
      ? { stalled: true, sinceMs, budgetMs, medianStepMs, step: last.step }
      : { stalled: false };
  }
}
