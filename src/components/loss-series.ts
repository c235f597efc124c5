/** A metric row as the server stores it: one per step and attempt, some fields absent. */
export interface MetricPoint {
  step: number;
  loss: number | null;
  evalLoss: number | null;
}

export interface LossPoint {
  step: number;
  loss?: number;
  evalLoss?: number;
}

/**
 * One point per step for the chart, in step order. A step recorded twice (a resumed attempt
 * retraces steps after its checkpoint) keeps the latest value of each series.
 */
export function lossSeries(rows: readonly MetricPoint[]): LossPoint[] {
  const byStep = new Map<number, LossPoint>();
  for (const row of rows) {
    const point = byStep.get(row.step) ?? { step: row.step };
    if (row.loss !== null && Number.isFinite(row.loss)) point.loss = row.loss;
    if (row.evalLoss !== null && Number.isFinite(row.evalLoss)) point.evalLoss = row.evalLoss;
    byStep.set(row.step, point);
  }
  return [...byStep.values()]
    .filter((point) => point.loss !== undefined || point.evalLoss !== undefined)
    .sort((a, b) => a.step - b.step);
}

/**
 * What the chart's rows depend on, as one string that changes when they may have: the monitor
 * stores each step's metrics in the transaction that moves the task's progress, and progress
 * moves without touching the task's `updatedAt` (that one changes with the status only).
 */
export function chartVersion(task: { updatedAt: Date | string; progress: unknown }): string {
  const progress = (task.progress ?? {}) as { step?: unknown; updatedAt?: unknown };
  return [new Date(task.updatedAt).getTime(), progress.step ?? "", progress.updatedAt ?? ""].join(
    ":",
  );
}
