import { type ProgressEvent, progressEventSchema } from "../../trainers/protocol";
import { emptyLossWatch, type LossWatch, observeCheckpoint, observeLoss } from "./divergence-watch";
import { isTrainingBar, type ParsedHfLine } from "./hf-output-parser";

/**
 * A task attempt's live progress, folded from progress.jsonl events and Hugging Face output in
 * training.log. Plain JSON (the lead stores it as jsonb): no undefined, no NaN, numbers or null.
 * A new attempt starts again from `initialProgress()`.
 */
/**
 * The format of the progress stored in a task row. 0: rows stored before it was versioned (no
 * field, no `skippedEvents`); they read as they are.
 */
export const PROGRESS_VERSION = 1;

export type ProgressState = {
  /** PROGRESS_VERSION when written by this studio; absent in older rows. */
  version?: number;
  epoch: number | null;
  totalEpochs: number | null;
  step: number | null;
  totalSteps: number | null;
  /** 0 to 100 */
  percent: number | null;
  loss: number | null;
  evalLoss: number | null;
  learningRate: number | null;
  tokensPerSecond: number | null;
  /** `path` as the trainer wrote it, relative to the task folder. */
  lastCheckpoint: { step: number; path: string } | null;
  /** Milliseconds since the epoch. */
  startedAt: number | null;
  updatedAt: number | null;
  etaSeconds: number | null;
  /**
   * progress.jsonl lines skipped because they are not a valid event (garbled JSON, an unknown
   * event, a value out of the protocol's ranges). Absent in rows stored by older studios.
   */
  skippedEvents?: number;
  /** Why the trainer said it failed (a "failed" event); absent in rows stored by older studios. */
  failure?: string | null;
  /** Bookkeeping for the divergence watchdog (./divergence-watch); absent in older rows. */
  lossWatch?: LossWatch;
  /** Bookkeeping, not for display: a progress.jsonl event was seen, so log lines are ignored. */
  structured: boolean;
  /** Bookkeeping: the (step, time) the step rate is measured from; see `measureFrom`. */
  rateBase: { step: number; at: number; firstAt: number } | null;
};

/** One point for the loss and learning-rate charts. */
export type MetricRow = {
  step: number;
  epoch: number | null;
  loss?: number;
  evalLoss?: number;
  learningRate?: number;
  at: number;
};

/**
 * A chart row's kind, the last part of its key (task, attempt, step, kind) in task_metrics: an
 * eval row carries an eval loss, a train row loss and/or learning rate. One step can have both.
 */
export function metricKind(row: MetricRow): "train" | "eval" {
  return row.evalLoss !== undefined ? "eval" : "train";
}

/**
 * Rows with the same (step, kind) merged into one, later fields over earlier ones, in order of
 * first appearance: one upsert statement may not touch a row twice.
 */
export function mergeMetricRows(rows: MetricRow[]): MetricRow[] {
  const byKey = new Map<string, MetricRow>();
  for (const row of rows) {
    const key = `${row.step}:${metricKind(row)}`;
    const earlier = byKey.get(key);
    byKey.set(key, earlier ? { ...earlier, ...row, epoch: row.epoch ?? earlier.epoch } : row);
  }
  return [...byKey.values()];
}

/**
 * `at`: when the monitor read the input, in milliseconds. Give every line of one read the same
 * `at`, so a backlog read at once is seen as a burst, not as a rate. Structured events that carry
 * their own `time` are timed by it instead.
 */
export type ProgressInput =
  | { source: "progress"; event: ProgressEvent; at: number }
  | { source: "log"; event: ParsedHfLine; at: number };

/** An attempt's progress before its first line; `resumedFrom`: the checkpoint it continues from. */
export function initialProgress(
  resumedFrom: { step: number; path: string } | null = null,
): ProgressState {
  return {
    version: PROGRESS_VERSION,
    epoch: null,
    totalEpochs: null,
    step: null,
    totalSteps: null,
    percent: null,
    loss: null,
    evalLoss: null,
    learningRate: null,
    tokensPerSecond: null,
    lastCheckpoint: resumedFrom,
    startedAt: null,
    updatedAt: null,
    etaSeconds: null,
    skippedEvents: 0,
    failure: null,
    lossWatch: emptyLossWatch(resumedFrom),
    structured: false,
    rateBase: null,
  };
}

/** One progress.jsonl line as an event, or null for anything else (blank, garbled, unknown event). */
export function parseProgressLine(text: string): ProgressEvent | null {
  const read = readProgressLine(text);
  return read && "event" in read ? read.event : null;
}

/** The longest `problem` text: enough to name the field and the rule, never the whole line. */
const MAX_PROBLEM_CHARS = 300;

/**
 * One progress.jsonl line: the event, or what is wrong with it (a short text naming the field and
 * the rule broken), or null for a blank line. A line that is not an event is skipped, never
 * applied in part: a value the database cannot store would otherwise stop the attempt's monitor.
 */
export function readProgressLine(
  text: string,
): { event: ProgressEvent } | { problem: string } | null {
  if (text.trim() === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: "not JSON" };
  }
  const parsed = progressEventSchema.safeParse(value);
  if (parsed.success) return { event: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  const problem = `${where}${issue?.message ?? "not a progress event"}`;
  return {
    problem:
      problem.length > MAX_PROBLEM_CHARS ? `${problem.slice(0, MAX_PROBLEM_CHARS)}…` : problem,
  };
}

/**
 * Folds one input into the state and returns the chart rows it produced.
 *
 * Both files describing one step (our trainers write progress.jsonl and may also print Hugging
 * Face output): structured events win. From the first progress.jsonl event of an attempt on, log
 * lines change nothing and produce no rows. Rows derived from the log before that first event can
 * describe a step that progress.jsonl describes again, so store rows keyed by step, merging fields,
 * and feed each poll's progress.jsonl lines before its training.log lines.
 */
export function reduceProgress(
  state: ProgressState,
  input: ProgressInput,
): { state: ProgressState; metrics: MetricRow[] } {
  if (input.source === "progress") return reduceEvent(state, input.event, input.at);
  if (state.structured) return { state, metrics: [] };
  return reduceLog(state, input.event, input.at);
}

function reduceEvent(
  previous: ProgressState,
  event: ProgressEvent,
  readAt: number,
): { state: ProgressState; metrics: MetricRow[] } {
  const at = event.time === undefined ? readAt : event.time * 1000;
  const state = touch({ ...previous, structured: true }, at);
  switch (event.event) {
    case "started": {
      // Not a trained step: loading can take minutes, so the rate is measured from the first step.
      const step = event.resumed_from_step ?? 0;
      const totalSteps = event.total_steps;
      return {
        state: {
          ...state,
          step,
          totalEpochs: event.total_epochs,
          totalSteps,
          percent: totalSteps > 0 ? Math.min(100, (step / totalSteps) * 100) : null,
          rateBase: null,
          etaSeconds: null,
        },
        metrics: [],
      };
    }
    case "progress": {
      const next = withStep(
        {
          ...state,
          epoch: event.epoch,
          totalEpochs: event.total_epochs,
          totalSteps: event.total_steps,
          loss: finite(event.loss) ?? state.loss,
          learningRate: finite(event.learning_rate) ?? state.learningRate,
          tokensPerSecond: finite(event.tokens_per_second) ?? state.tokensPerSecond,
          lossWatch: watchLoss(state, event.step, event.loss ?? notFinite(event.loss_not_finite)),
        },
        event.step,
        at,
        null,
      );
      return {
        state: next,
        metrics: trainRow(event.step, event.epoch, event.loss, event.learning_rate, at),
      };
    }
    case "eval": {
      const epoch = event.epoch ?? state.epoch;
      const evalLoss = finite(event.eval_loss);
      return {
        state: { ...state, epoch, evalLoss: evalLoss ?? state.evalLoss },
        metrics: evalLoss === null ? [] : [{ step: event.step, epoch, evalLoss, at }],
      };
    }
    case "checkpoint":
      return {
        state: {
          ...state,
          lastCheckpoint: { step: event.step, path: event.path },
          lossWatch: observeCheckpoint(watchOf(state), event.step, event.path),
        },
        metrics: [],
      };
    case "completed":
      return {
        state: {
          ...state,
          step: event.step,
          percent: 100,
          etaSeconds: 0,
          evalLoss: finite(event.eval_loss_adapter) ?? state.evalLoss,
        },
        metrics: [],
      };
    case "stopped":
      return { state: { ...state, step: event.step, etaSeconds: null }, metrics: [] };
    case "failed":
      return { state: { ...state, failure: event.reason }, metrics: [] };
    case "warning":
      // Not progress: the monitor stores it as a task event (trainerWarning).
      return { state, metrics: [] };
  }
}

function reduceLog(
  previous: ProgressState,
  line: ParsedHfLine,
  at: number,
): { state: ProgressState; metrics: MetricRow[] } {
  switch (line.kind) {
    case "tqdm": {
      // Trainer's evaluation bar also has no label; the training bar is the one with the largest
      // total (max_steps), which also copes with an evaluation before the first training step.
      if (!isTrainingBar(line)) return { state: previous, metrics: [] };
      if (previous.totalSteps !== null && line.total < previous.totalSteps) {
        return { state: previous, metrics: [] };
      }
      const state = touch({ ...previous, totalSteps: line.total }, at);
      return { state: withStep(state, line.step, at, line.remainingSeconds), metrics: [] };
    }
    case "train-log": {
      const state = touch(
        {
          ...previous,
          epoch: finite(line.epoch) ?? previous.epoch,
          loss: finite(line.loss) ?? previous.loss,
          learningRate: finite(line.learningRate) ?? previous.learningRate,
          lossWatch:
            previous.step === null
              ? previous.lossWatch
              : watchLoss(previous, previous.step, line.loss),
        },
        at,
      );
      const metrics =
        state.step === null
          ? []
          : trainRow(state.step, state.epoch, line.loss, line.learningRate, at);
      return { state, metrics };
    }
    case "eval-log": {
      const evalLoss = finite(line.evalLoss);
      const state = touch(
        {
          ...previous,
          epoch: finite(line.epoch) ?? previous.epoch,
          evalLoss: evalLoss ?? previous.evalLoss,
        },
        at,
      );
      const metrics =
        state.step === null || evalLoss === null
          ? []
          : [{ step: state.step, epoch: state.epoch, evalLoss, at }];
      return { state, metrics };
    }
    case "train-summary":
      return {
        state: touch(
          {
            ...previous,
            epoch: finite(line.epoch) ?? previous.epoch,
            percent: 100,
            etaSeconds: 0,
          },
          at,
        ),
        metrics: [],
      };
  }
}

function watchOf(state: ProgressState): LossWatch {
  return state.lossWatch ?? emptyLossWatch(null);
}

/** The loss report (a number, NaN, ±Infinity, or none) folded into the divergence watch. */
function watchLoss(state: ProgressState, step: number, loss: number | null | undefined) {
  return typeof loss === "number" ? observeLoss(watchOf(state), step, loss) : state.lossWatch;
}

/** The protocol's way of saying the loss was not a number (JSON has no NaN). */
function notFinite(value: "nan" | "inf" | "-inf" | undefined): number | undefined {
  if (value === undefined) return undefined;
  return value === "nan" ? Number.NaN : value === "inf" ? Infinity : -Infinity;
}

function touch(state: ProgressState, at: number): ProgressState {
  return { ...state, startedAt: state.startedAt ?? at, updatedAt: at };
}

/** A training row, or none when the event carried neither loss nor learning rate. */
function trainRow(
  step: number,
  epoch: number | null,
  loss: number | null | undefined,
  learningRate: number | null | undefined,
  at: number,
): MetricRow[] {
  const row: MetricRow = { step, epoch, at };
  const finiteLoss = finite(loss);
  const finiteRate = finite(learningRate);
  if (finiteLoss !== null) row.loss = finiteLoss;
  if (finiteRate !== null) row.learningRate = finiteRate;
  return finiteLoss === null && finiteRate === null ? [] : [row];
}

/** Moves to `step`, updating percent and the ETA (own rate first, else what tqdm estimated). */
function withStep(
  state: ProgressState,
  step: number,
  at: number,
  fallbackEtaSeconds: number | null,
): ProgressState {
  const rateBase = measureFrom(state.rateBase, step, at);
  const total = state.totalSteps;
  const percent =
    total !== null && total > 0 ? Math.min(100, Math.max(0, (step / total) * 100)) : null;
  let etaSeconds = fallbackEtaSeconds;
  if (
    rateBase &&
    total !== null &&
    step > rateBase.step &&
    at - rateBase.at >= MIN_RATE_WINDOW_MS
  ) {
    const stepsPerSecond = (step - rateBase.step) / ((at - rateBase.at) / 1000);
    etaSeconds = Math.max(0, (total - step) / stepsPerSecond);
  }
  return { ...state, step, percent, rateBase, etaSeconds };
}

const MIN_RATE_WINDOW_MS = 1000;
const SETTLE_MS = 2000;

/**
 * The rate is measured from the first step seen in this attempt, so a resumed run is not credited
 * with the steps it skipped. Step 0 does not start the measurement (a resumed Trainer draws 0 and
 * then jumps to its checkpoint's step), and for `SETTLE_MS` after it starts the base follows the
 * latest step, absorbing a backlog read at once or a fast-forward. A step below the base means a
 * restarted count: measure again.
 */
function measureFrom(
  base: ProgressState["rateBase"],
  step: number,
  at: number,
): ProgressState["rateBase"] {
  if (step <= 0) return base;
  if (base === null || step < base.step) return { step, at, firstAt: at };
  if (at - base.firstAt < SETTLE_MS) return { step, at, firstAt: base.firstAt };
  return base;
}

function finite(value: number | null | undefined): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
