import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { attempts, taskMetrics, tasks } from "../db/schema";
import type { StudioBus } from "../events/bus";
import { parseHfOutput } from "./hf-output-parser";
import { type LogCursor, type LogLine, readNewLines } from "./log-cursor";
import {
  type MetricRow,
  mergeMetricRows,
  metricKind,
  type ProgressState,
  parseProgressLine,
  reduceProgress,
} from "./progress-state";

export interface MonitorTarget {
  taskId: string;
  attempt: number;
  attemptRowId: number;
  taskDir: string;
  logCursor: LogCursor | null;
  progressCursor: LogCursor | null;
  progress: ProgressState;
}

const READ_CHUNK = 1024 * 1024;

/** On a repeated (task, attempt, step, kind): the new row's values, keeping old ones it lacks. */
const METRIC_UPSERT = {
  epoch: sql.raw(`coalesce(excluded.epoch, "task_metrics"."epoch")`),
  loss: sql.raw(`coalesce(excluded.loss, "task_metrics"."loss")`),
  evalLoss: sql.raw(`coalesce(excluded.eval_loss, "task_metrics"."eval_loss")`),
  learningRate: sql.raw(`coalesce(excluded.learning_rate, "task_metrics"."learning_rate")`),
  at: sql.raw("excluded.at"),
};
/**
 * Coalesces bursts of file events: a trainer printing 5,000 lines/s costs ~10 reads (and
 * database transactions) a second, not 5,000. Measured: at 50 ms, five trainers printing
 * 100 lines/s each kept the studio's core ~64% busy (`npm run bench:cost`).
 */
const MIN_TICK_GAP_MS = 100;

/**
 * Follows one running attempt's files: turns new lines of progress.jsonl and training.log into
 * progress and metrics, stores them in the same transaction as the cursors they came from,
 * and pushes log lines and the new progress to subscribers. File events are only hints;
 * `tick` is also called on a timer by the supervisor, which guarantees progress.
 */
export class AttemptMonitor {
  private running: Promise<void> | null = null;
  private again = false;
  private lastTickAt = 0;
  private delayed: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    readonly target: MonitorTarget,
    private readonly db: Db,
    private readonly bus: StudioBus,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Reads whatever is new. Concurrent calls collapse into one follow-up run. */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          this.lastTickAt = Date.now();
          await this.readOnce();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.onError(err);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** A file-system hint: tick soon, but not more often than MIN_TICK_GAP_MS. */
  hint() {
    if (this.stopped || this.delayed) return;
    const wait = Math.max(0, this.lastTickAt + MIN_TICK_GAP_MS - Date.now());
    this.delayed = setTimeout(() => {
      this.delayed = null;
      void this.tick();
    }, wait);
  }

  /** Reads to the end of both files (used once the trainer has exited), then stops. */
  async drain(): Promise<void> {
    await this.tick();
    this.stop();
  }

  stop() {
    this.stopped = true;
    if (this.delayed) clearTimeout(this.delayed);
  }

  private async readOnce(): Promise<void> {
    const t = this.target;
    const now = Date.now();
    let progress = t.progress;
    const metrics: MetricRow[] = [];
    let changed = false;

    const structured = await readNewLines(
      join(t.taskDir, "progress.jsonl"),
      t.progressCursor,
      READ_CHUNK,
    );
    for (const line of structured.lines) {
      const event = parseProgressLine(line.text);
      if (!event) continue;
      const next = reduceProgress(progress, { source: "progress", event, at: now });
      progress = next.state;
      metrics.push(...next.metrics);
    }
    changed ||=
      structured.cursor.offset !== t.progressCursor?.offset || structured.lines.length > 0;

    const log = await readNewLines(join(t.taskDir, "training.log"), t.logCursor, READ_CHUNK);
    const logLines: LogLine[] = log.lines;
    for (const line of logLines) {
      // A dict line carries no step; the tqdm bar drawn just before it in the same line does.
      for (const parsed of parseHfOutput(line.text)) {
        const next = reduceProgress(progress, { source: "log", event: parsed, at: now });
        progress = next.state;
        metrics.push(...next.metrics);
      }
    }
    // tqdm redraws its bar with \r and ends the line only when it closes: the unfinished line
    // is where an unmodified script's live step count is. It moves progress, not the cursor.
    if (log.partial) {
      for (const parsed of parseHfOutput(log.partial)) {
        if (parsed.kind !== "tqdm") continue;
        progress = reduceProgress(progress, { source: "log", event: parsed, at: now }).state;
      }
    }
    changed ||= log.cursor.offset !== t.logCursor?.offset || logLines.length > 0;
    changed ||= progress.step !== t.progress.step;
    if (!changed) return;

    const checkpoint = progress.lastCheckpoint?.path ?? null;
    // Plain log lines move only the cursor; the task row is rewritten only when progress moved.
    const progressMoved = progress !== t.progress;
    const [row] = await this.db.transaction(async (tx) => {
      await tx
        .update(attempts)
        .set({ logCursor: log.cursor, progressCursor: structured.cursor })
        .where(eq(attempts.id, t.attemptRowId));
      if (metrics.length) {
        // Idempotent: lines read again after a restart rewrite their rows, never add rows.
        await tx
          .insert(taskMetrics)
          .values(
            mergeMetricRows(metrics).map((m) => ({
              ...m,
              kind: metricKind(m),
              taskId: t.taskId,
              attempt: t.attempt,
              at: new Date(m.at),
            })),
          )
          .onConflictDoUpdate({
            target: [taskMetrics.taskId, taskMetrics.attempt, taskMetrics.step, taskMetrics.kind],
            set: METRIC_UPSERT,
          });
      }
      if (!progressMoved) return [];
      return tx
        .update(tasks)
        .set({
          progress: progress as unknown as Record<string, unknown>,
          ...(checkpoint ? { lastCheckpoint: checkpoint } : {}),
        })
        .where(eq(tasks.id, t.taskId))
        .returning();
    });
    t.progress = progress;
    t.logCursor = log.cursor;
    t.progressCursor = structured.cursor;

    if (logLines.length || log.reset) {
      this.bus.publishLog({
        taskId: t.taskId,
        attempt: t.attempt,
        lines: logLines,
        reset: log.reset,
      });
    }
    if (row) this.bus.publishTask(row);
    // More may be waiting beyond this chunk; the loop in tick() stops at the first empty read.
    if (structured.lines.length > 0 || logLines.length > 0) this.again = true;
  }
}
