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
