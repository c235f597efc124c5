import { type FileHandle, stat } from "node:fs/promises";
import { join } from "node:path";
import { and, eq, sql } from "drizzle-orm";
import type { ProgressEvent } from "../../trainers/protocol";
import type { Db } from "../db/client";
import { attempts, type TaskEventRow, taskEvents, taskMetrics, tasks } from "../db/schema";
import type { StudioBus } from "../events/bus";
import { addEvent } from "../tasks/repository";
import { parseHfOutput } from "./hf-output-parser";
import {
  type LogCursor,
  type LogLine,
  openIfExists,
  type ReadResult,
  readNewLines,
  readOpenFile,
} from "./log-cursor";
import {
  type MetricRow,
  mergeMetricRows,
  metricKind,
  type ProgressState,
  readProgressLine,
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

/**
 * On a repeated (task, attempt, step, kind): the new row's values, keeping old ones it lacks, and
 * the first row's time, so reading the same lines again changes nothing.
 */
const METRIC_UPSERT = {
  epoch: sql.raw(`coalesce(excluded.epoch, "task_metrics"."epoch")`),
  loss: sql.raw(`coalesce(excluded.loss, "task_metrics"."loss")`),
  evalLoss: sql.raw(`coalesce(excluded.eval_loss, "task_metrics"."eval_loss")`),
  learningRate: sql.raw(`coalesce(excluded.learning_rate, "task_metrics"."learning_rate")`),
};
/**
 * Coalesces bursts of file events: a trainer printing 5,000 lines/s costs ~10 reads (and
 * database transactions) a second, not 5,000. Measured: at 50 ms, five trainers printing
 * 100 lines/s each kept the studio's core ~64% busy (`npm run bench:cost`).
 */
const MIN_TICK_GAP_MS = 100;

/**
 * Plain log lines move only the cursors, and those are stored at most this often: lines are
 * published at once, and re-reading the lines since the stored cursor after a restart is harmless
 * (subscribers drop line ids they already have; metric rows are upserts). Anything else the
 * monitor stores (progress, metrics, events, a reset) stores the cursors with it.
 */
const CURSOR_STORE_MS = 1000;

/** Warnings about skipped progress.jsonl lines: the first few, then at 10, 100, 1,000, ... */
function reportSkipped(count: number): boolean {
  return count <= 3 || (count >= 10 && /^10*$/.test(String(count)));
}

type MonitorEvent = { type: "warning"; message: string; data: Record<string, unknown> };

/**
 * A warning the trainer wrote (a checkpoint discarded, a resume that fell back, a disk that will
 * not hold the run) becomes a "warning" task event in its words, stored with the cursor of its
 * line, so a restart neither loses nor repeats it.
 */
function trainerWarning(event: Extract<ProgressEvent, { event: "warning" }>): MonitorEvent {
  return {
    type: "warning",
    message: event.message,
    data: {
      source: "trainer",
      kind: event.kind,
      ...(event.step === undefined ? {} : { step: event.step }),
    },
  };
}

/**
 * Follows one running attempt's files: turns new lines of progress.jsonl and training.log into
 * progress and metrics, stores them in the same transaction as the cursors they came from,
 * and pushes log lines and the new progress to subscribers. File events are only hints;
 * `tick` is also called on a timer by the supervisor, which guarantees progress.
 *
 * Faults stay in the files: a progress.jsonl line that is not a valid event is skipped, counted
 * in `progress.skippedEvents` and reported as a "warning" task event, never applied in part. The
 * monitor keeps training.log open and follows the trainer's output by descriptor, so a log
 * deleted or replaced while the attempt runs is still read to the end; that, a truncation, or a
 * log missing after a restart is reported as a "warning" event naming the byte offset.
 */
export class AttemptMonitor {
  private running: Promise<void> | null = null;
  private again = false;
  private lastTickAt = 0;
  private delayed: NodeJS.Timeout | null = null;
  private stopped = false;
  /** training.log as opened by this monitor: the trainer's output, whatever its path names now. */
  private logFile: FileHandle | null = null;
  /** What the path training.log was last seen to be, so each change is reported once. */
  private logPath: "same" | "deleted" | "replaced" | "missing" = "same";
  private cursorsStoredAt = 0;
  private cursorsDirty = false;
  private flush = false;
  /** While draining: how many more reads the tick loop may make (null: not draining). */
  private passesLeft: number | null = null;
  /** What stopped the last tick loop, if anything: a drain that could not store must not pass as done. */
  private failure: unknown = null;

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
      this.failure = null;
      try {
        do {
          this.again = false;
          this.lastTickAt = Date.now();
          await this.readOnce();
          if (this.passesLeft !== null) this.passesLeft--;
        } while (this.again && !this.stopped && this.passesLeft !== 0);
      } catch (err) {
        this.failure = err;
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

  /**
   * Reads to the end of both files as they are now (used once the attempt has ended), stores the
   * cursors, then stops. Bounded by what the files hold when it begins: a trainer that still
   * writes (one that could not be identified, so nothing could end it) cannot keep it going.
   * Throws when what it read could not be stored: the attempt must not be ended before its last
   * lines are (the next try reads again from the stored cursors).
   */
  async drain(): Promise<void> {
    this.flush = true;
    const t = this.target;
    const bytes =
      (await sizeOf(join(t.taskDir, "training.log"))) +
      (await sizeOf(join(t.taskDir, "progress.jsonl")));
    // Each pass reads up to READ_CHUNK of each file; two more cover a reset and the last look.
    this.passesLeft = Math.ceil(bytes / READ_CHUNK) + 2;
    await this.running;
    await this.tick();
    this.stop();
    if (this.failure) throw this.failure;
  }

  stop() {
    this.stopped = true;
    if (this.delayed) clearTimeout(this.delayed);
    const file = this.logFile;
    this.logFile = null;
    if (file) {
      // After a read in flight, if any, has finished with it.
      void (this.running ?? Promise.resolve()).finally(() => file.close().catch(() => {}));
    }
  }

  private async readOnce(): Promise<void> {
    const t = this.target;
    const now = Date.now();
    let progress = t.progress;
    const metrics: MetricRow[] = [];
    const events: MonitorEvent[] = [];

    const structured = await readNewLines(
      join(t.taskDir, "progress.jsonl"),
      t.progressCursor,
      READ_CHUNK,
    );
    for (const line of structured.lines) {
      const read = readProgressLine(line.text);
      if (read === null) continue;
      if ("problem" in read) {
        const skipped = (progress.skippedEvents ?? 0) + 1;
        progress = { ...progress, skippedEvents: skipped };
        if (reportSkipped(skipped)) {
          events.push({
            type: "warning",
            message: `progress.jsonl: skipped the line at byte ${line.offset} (${read.problem}); ${skipped} skipped so far`,
            data: { file: "progress.jsonl", offset: line.offset, problem: read.problem, skipped },
          });
        }
        continue;
      }
      const next = reduceProgress(progress, { source: "progress", event: read.event, at: now });
      progress = next.state;
      metrics.push(...next.metrics);
      if (read.event.event === "warning") events.push(trainerWarning(read.event));
    }

    const log = await this.readLog(events);
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
    this.cursorsDirty ||=
      !sameCursor(log.cursor, t.logCursor) || !sameCursor(structured.cursor, t.progressCursor);

    // The task row is rewritten only when progress moved (or to carry an event to subscribers):
    // new lines, or a new step of the unfinished bar. A bar redrawn at the same step moves
    // nothing, so an idle tick writes nothing.
    const linesRead = structured.lines.length > 0 || logLines.length > 0;
    const progressMoved =
      progress !== t.progress && (linesRead || progress.step !== t.progress.step);
    if (!progressMoved) progress = t.progress;
    const checkpoint = progress.lastCheckpoint?.path ?? null;
    const mustStore = progressMoved || metrics.length > 0 || events.length > 0 || !!log.reset;
    const store =
      mustStore ||
      (this.cursorsDirty && (this.flush || now - this.cursorsStoredAt >= CURSOR_STORE_MS));

    let row: Awaited<ReturnType<typeof this.store>>["row"];
    let eventRows: TaskEventRow[] = [];
    if (store) {
      ({ row, eventRows } = await this.store({
        log: log.cursor,
        structured: structured.cursor,
        metrics,
        events,
        progress: progressMoved || events.length > 0 ? progress : null,
        checkpoint,
      }));
      this.cursorsStoredAt = now;
      this.cursorsDirty = false;
    }
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
    if (row) {
      if (eventRows.length === 0) this.bus.publishTask(row);
      for (const event of eventRows) this.bus.publishTask({ ...row, event });
    }
    // More may be waiting beyond this chunk; the loop in tick() stops at the first empty read.
    if (linesRead) this.again = true;
  }

  /** The cursors, with whatever was derived from the lines since, in one transaction. */
  private async store(batch: {
    log: LogCursor;
    structured: LogCursor;
    metrics: MetricRow[];
    events: MonitorEvent[];
    progress: ProgressState | null;
    checkpoint: string | null;
  }) {
    const t = this.target;
    return this.db.transaction(async (tx) => {
      await tx
        .update(attempts)
        .set({ logCursor: batch.log, progressCursor: batch.structured })
        .where(eq(attempts.id, t.attemptRowId));
      if (batch.metrics.length) {
        // Idempotent: lines read again after a restart rewrite their rows, never add rows.
        await tx
          .insert(taskMetrics)
          .values(
            mergeMetricRows(batch.metrics).map((m) => ({
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
      const eventRows: TaskEventRow[] = [];
      for (const event of batch.events) {
        eventRows.push(
          await addEvent(tx as unknown as Db, t.taskId, event.type, event.message, {
            attempt: t.attempt,
            data: event.data,
          }),
        );
      }
      if (!batch.progress) return { row: undefined, eventRows };
      const [row] = await tx
        .update(tasks)
        .set({
          progress: batch.progress as unknown as Record<string, unknown>,
          ...(batch.checkpoint ? { lastCheckpoint: batch.checkpoint } : {}),
        })
        .where(eq(tasks.id, t.taskId))
        .returning();
      return { row, eventRows };
    });
  }

  /** Whether an earlier monitor of this attempt (before a restart) already said the log is missing. */
  private async reportedMissing(): Promise<boolean> {
    const t = this.target;
    const rows = await this.db
      .select({ data: taskEvents.data })
      .from(taskEvents)
      .where(
        and(
          eq(taskEvents.taskId, t.taskId),
          eq(taskEvents.attempt, t.attempt),
          eq(taskEvents.type, "warning"),
        ),
      );
    return rows.some((row) => {
      const data = row.data as { file?: unknown; kind?: unknown } | null;
      return data?.file === "training.log" && data.kind === "missing";
    });
  }

  /**
   * New lines of training.log, and a warning in `events` when the path no longer names the file
   * the trainer writes (deleted, replaced), the file shrank, or it is missing after a restart.
   * The path is opened afresh for each read (on NFS, as with Slurm, an open revalidates what the
   * client caches); the handle kept on the trainer's file is read only once the path has lost it.
   */
  private async readLog(events: MonitorEvent[]): Promise<ReadResult> {
    const t = this.target;
    const at = t.logCursor?.offset ?? 0;
    const cursorInode = t.logCursor?.inode ?? "";
    const fresh = await openIfExists(join(t.taskDir, "training.log"));
    try {
      const freshInode = fresh ? String((await fresh.stat({ bigint: true })).ino) : null;
      if (fresh && !this.logFile && !this.stopped) this.logFile = fresh;
      const keptInode = this.logFile
        ? fresh && this.logFile === fresh
          ? freshInode
          : String((await this.logFile.stat({ bigint: true })).ino)
        : null;
      // What the path is now, next to the file this monitor follows.
      const seen: typeof this.logPath =
        keptInode === null
          ? fresh
            ? "same"
            : "missing"
          : !fresh
            ? "deleted"
            : freshInode === keptInode
              ? "same"
              : "replaced";

      if (seen === "missing") {
        if (at > 0 && this.logPath !== "missing" && !(await this.reportedMissing())) {
          events.push(
            logWarning(
              "missing",
              at,
              `training.log is missing (it had been read up to byte ${at}); the lines after that cannot be shown`,
            ),
          );
        }
        this.logPath = seen;
        return { lines: [], cursor: t.logCursor ?? { inode: "", offset: 0 } };
      }
      const followed = seen === "same" ? fresh! : this.logFile!;
      const read = await readOpenFile(followed, t.logCursor, READ_CHUNK);
      if (read.reset === "rotated" && cursorInode !== "") {
        // A file other than the cursor's, found on opening: replaced while no one watched.
        events.push(
          logWarning(
            "replaced",
            at,
            `training.log was replaced by another file (the old one had been read up to byte ${at}); showing the new file from its start`,
          ),
        );
      } else if (read.reset === "truncated") {
        events.push(
          logWarning(
            "truncated",
            at,
            `training.log was truncated (it had been read up to byte ${at}); lines before that are gone from the file, showing it again from its start`,
          ),
        );
      }
      if (seen !== "same" && seen !== this.logPath) {
        const what = seen === "deleted" ? "deleted" : "replaced by another file";
        events.push(
          logWarning(
            seen,
            at,
            `training.log was ${what} after byte ${at} had been read; the trainer's output is still followed and shown live, but lines from there on are not in training.log`,
          ),
        );
      }
      this.logPath = seen;
      return read;
    } finally {
      if (fresh && fresh !== this.logFile) await fresh.close().catch(() => {});
    }
  }
}

function logWarning(kind: string, offset: number, message: string): MonitorEvent {
  return { type: "warning", message, data: { file: "training.log", kind, offset } };
}

function sameCursor(a: LogCursor, b: LogCursor | null): boolean {
  return b !== null && a.inode === b.inode && a.offset === b.offset;
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (st) => st.size,
    () => 0,
  );
}
