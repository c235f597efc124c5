import { z } from "zod";

const num = z.number().nullable().optional();

/** The fields of the monitor's ProgressState the detail shows; anything missing reads as null. */
const progressStateFields = z.looseObject({
  epoch: num,
  totalEpochs: num,
  step: num,
  totalSteps: num,
  loss: num,
  evalLoss: num,
  learningRate: num,
  startedAt: num,
  updatedAt: num,
  etaSeconds: num,
  skippedEvents: num,
});

export interface ProgressView {
  epoch: number | null;
  totalEpochs: number | null;
  step: number | null;
  totalSteps: number | null;
  loss: number | null;
  evalLoss: number | null;
  learningRate: number | null;
  /** Seconds since training started: to `now` while running, to the last update otherwise. */
  elapsedSeconds: number | null;
  etaSeconds: number | null;
  /** progress.jsonl lines the studio skipped as invalid (each reported as a warning event). */
  skippedEvents: number;
}

/** Reads a task's stored progress; `running` says whether time is still passing for it. */
export function progressView(progress: unknown, running: boolean, now: number): ProgressView {
  const parsed = progressStateFields.safeParse(progress);
  const p = parsed.success ? parsed.data : {};
  const startedAt = p.startedAt ?? null;
  const end = running ? now : (p.updatedAt ?? null);
  return {
    epoch: p.epoch ?? null,
    totalEpochs: p.totalEpochs ?? null,
    step: p.step ?? null,
    totalSteps: p.totalSteps ?? null,
    loss: p.loss ?? null,
    evalLoss: p.evalLoss ?? null,
    learningRate: p.learningRate ?? null,
    elapsedSeconds:
      startedAt !== null && end !== null ? Math.max(0, Math.round((end - startedAt) / 1000)) : null,
    etaSeconds: running && p.etaSeconds != null ? Math.round(p.etaSeconds) : null,
    skippedEvents: p.skippedEvents ?? 0,
  };
}

/** An epoch may be fractional (Hugging Face counts 1.5 epochs): show at most two decimals. */
export function formatEpoch(epoch: number): string {
  return Number.isInteger(epoch) ? String(epoch) : epoch.toFixed(2);
}

export function formatLoss(loss: number): string {
  return loss.toPrecision(4);
}

export function formatLearningRate(rate: number): string {
  return rate.toExponential(2);
}
