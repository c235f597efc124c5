/**
 * Runs side by side, pure: the settings that differ, each run's final figures, the loss curves
 * overlaid (by step or by time), and all of it as CSV. The page (/compare) and the CLI
 * (`studio task compare`) both build on it.
 */

export interface RunToCompare {
  id: string;
  name: string;
  status: string;
  model: string;
  trainer: string;
  hyperparameters: Record<string, unknown>;
  limits: Record<string, unknown>;
  metrics: readonly RunMetric[];
}

export interface RunMetric {
  attempt: number;
  step: number;
  loss: number | null;
  evalLoss: number | null;
  at: Date | string;
}

export interface SettingRow {
  setting: string;
  /** One per run, in the runs' order; "" when a run does not have it. */
  values: string[];
  differs: boolean;
}

/** Every setting of the runs (model, trainer, hyperparameters, limits), differing ones first. */
export function settingsTable(runs: readonly RunToCompare[]): SettingRow[] {
  const settingsOf = (run: RunToCompare): Record<string, unknown> => ({
    model: run.model,
    trainer: run.trainer,
    ...run.hyperparameters,
    ...Object.fromEntries(Object.entries(run.limits).map(([k, v]) => [`limits.${k}`, v])),
  });
  const all = runs.map(settingsOf);
  const keys = [...new Set(all.flatMap((s) => Object.keys(s)))];
  const rows = keys.map((setting) => {
    const values = all.map((s) => (setting in s ? format(s[setting]) : ""));
    return { setting, values, differs: new Set(values).size > 1 };
  });
  // Stable within each group: the order the settings are defined in.
  return [...rows.filter((r) => r.differs), ...rows.filter((r) => !r.differs)];
}

export interface FinalFigures {
  id: string;
  name: string;
  status: string;
  /** The highest step with a recorded loss. */
  steps: number | null;
  finalLoss: number | null;
  finalEvalLoss: number | null;
  bestEvalLoss: number | null;
  /** From the first metric to the last, in seconds: the run's measured training time. */
  seconds: number | null;
}

export function finalFigures(run: RunToCompare): FinalFigures {
  const latest = latestPerStep(run.metrics);
  const train = latest.filter((m) => m.loss !== null);
  const evals = latest.filter((m) => m.evalLoss !== null);
  const times = run.metrics.map((m) => new Date(m.at).getTime());
  return {
    id: run.id,
    name: run.name,
    status: run.status,
    steps: train.at(-1)?.step ?? null,
    finalLoss: train.at(-1)?.loss ?? null,
    finalEvalLoss: evals.at(-1)?.evalLoss ?? null,
    bestEvalLoss: evals.length ? Math.min(...evals.map((m) => m.evalLoss!)) : null,
    seconds: times.length ? (Math.max(...times) - Math.min(...times)) / 1000 : null,
  };
}

/** One point per x value, each run's train and eval loss as `<run id>:loss` / `<run id>:eval`. */
export type OverlayPoint = { x: number } & Record<string, number>;

/**
 * The runs' losses on one axis: by step, or by minutes since each run's first metric (runs
 * started at different times line up at 0). A step recorded again by a resumed attempt keeps
 * the latest value, as on a task's own chart.
 */
export function overlay(runs: readonly RunToCompare[], by: "step" | "time"): OverlayPoint[] {
  const points = new Map<number, OverlayPoint>();
  for (const run of runs) {
    const rows = latestPerStep(run.metrics);
    const start = Math.min(...run.metrics.map((m) => new Date(m.at).getTime()));
    for (const row of rows) {
      const x =
        by === "step"
          ? row.step
          : Math.round(((new Date(row.at).getTime() - start) / 60_000) * 1000) / 1000;
      const point = points.get(x) ?? ({ x } as OverlayPoint);
      if (row.loss !== null) point[`${run.id}:loss`] = row.loss;
      if (row.evalLoss !== null) point[`${run.id}:eval`] = row.evalLoss;
      points.set(x, point);
    }
  }
  return [...points.values()].sort((a, b) => a.x - b.x);
}

/** Every metric of every run, one row each, as CSV (RFC 4180 quoting). */
export function metricsCsv(runs: readonly RunToCompare[]): string {
  const lines = [["task_id", "task_name", "attempt", "step", "loss", "eval_loss", "at"]];
  for (const run of runs) {
    for (const m of run.metrics) {
      lines.push([
        run.id,
        run.name,
        String(m.attempt),
        String(m.step),
        m.loss === null ? "" : String(m.loss),
        m.evalLoss === null ? "" : String(m.evalLoss),
        new Date(m.at).toISOString(),
      ]);
    }
  }
  return `${lines.map((cells) => cells.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Per step, the train row and the eval row of the latest attempt that recorded them. */
function latestPerStep(metrics: readonly RunMetric[]): RunMetric[] {
  const byStep = new Map<number, RunMetric>();
  const ordered = [...metrics].sort((a, b) => a.attempt - b.attempt || a.step - b.step);
  for (const m of ordered) {
    const earlier = byStep.get(m.step);
    byStep.set(m.step, {
      ...m,
      loss: m.loss ?? (earlier && earlier.attempt === m.attempt ? earlier.loss : null),
      evalLoss: m.evalLoss ?? (earlier && earlier.attempt === m.attempt ? earlier.evalLoss : null),
    });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function format(value: unknown): string {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}
