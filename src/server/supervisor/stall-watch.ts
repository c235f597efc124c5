/**
 * The stall watchdog's arithmetic, pure: when a running attempt's steps stop for longer than
 * `factor` times its median step time (and at least `minMs`), it is stalled: a hang at a
 * collective, a dead data loader, a stuck evaluation. Nothing is judged before two steps have
 * been seen (model loading and the first step take what they take) or while the task is paused.
 * An evaluation or checkpoint save due by the task's schedule gets a longer budget of its own.
 */

export interface StallPolicy {
  /** Stalled after this many median step times without a new step. */
  factor: number;
  /** Never stalled sooner than this. */
  minMs: number;
  /** Never sooner than this either when an evaluation or a checkpoint save is due (see `slowWorkDue`). */
  slowMs: number;
}

export type StallVerdict =
  | { stalled: false }
  | {
      stalled: true;
      sinceMs: number;
      budgetMs: number;
      medianStepMs: number;
      step: number;
      /** What was due after the step, which the budget allowed for. */
      due: SlowWork | null;
    };

export type SlowWork = "an evaluation" | "a checkpoint save" | "the final evaluation and save";

/**
 * Whether the trainer is due to evaluate or save a checkpoint between the last reported step and
 * the next report (`loggingSteps` later), by the task's own schedule: those take far longer than
 * a step, and the stall watchdog gives them their own, longer budget.
 */
export function slowWorkDue(
  step: number,
  schedule: { evalSteps: number; saveSteps: number; loggingSteps: number; evaluates: boolean },
  totalSteps: number | null,
): SlowWork | null {
  const next = step + schedule.loggingSteps;
  const multipleIn = (every: number) => Math.floor(next / every) * every >= step;
  if (totalSteps !== null && totalSteps >= step && totalSteps <= next) {
    return "the final evaluation and save";
  }
  if (schedule.evaluates && multipleIn(schedule.evalSteps)) return "an evaluation";
  if (multipleIn(schedule.saveSteps)) return "a checkpoint save";
  return null;
}

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

  /** `due`: slow work due after the last step (`slowWorkDue`), which gets `policy.slowMs`. */
  verdict(now: number, policy: StallPolicy, due: SlowWork | null = null): StallVerdict {
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
    const budgetMs = Math.max(due ? policy.slowMs : policy.minMs, policy.factor * medianStepMs);
    const sinceMs = now - last.at;
    return sinceMs > budgetMs
      ? { stalled: true, sinceMs, budgetMs, medianStepMs, step: last.step, due }
      : { stalled: false };
  }
}
