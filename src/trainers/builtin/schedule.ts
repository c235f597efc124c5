/** Number of warm-up steps, counted as Hugging Face does (ceil of ratio × total). */
export function warmupSteps(totalSteps: number, warmupRatio: number): number {
  return Math.ceil(totalSteps * warmupRatio);
}

/**
 * Learning rate for the 0-based optimizer step `step`: linear warm-up from 0, then linear
 * decay to 0 at `totalSteps` (Hugging Face's "linear" schedule).
 */
export function learningRateAt(
  step: number,
  totalSteps: number,
  peak: number,
  warmupRatio: number,
): number {
  const warmup = warmupSteps(totalSteps, warmupRatio);
  if (step < warmup) return (peak * step) / warmup;
  const remaining = Math.max(0, totalSteps - step);
  return (peak * remaining) / Math.max(1, totalSteps - warmup);
}
