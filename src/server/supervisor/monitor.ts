import { closeSync, fstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { and, eq, sql } from "drizzle-orm";
import type { ProgressEvent } from "../../trainers/protocol";
import type { Db } from "../db/client";
import { attempts, type TaskEventRow, taskEvents, tasks } from "../db/schema";
import type { StudioBus } from "../events/bus";
import {
  type LogCursor,
  type LogLine,
  openIfExistsSync,
  type ReadResult,
  readNewLinesSync,
  readOpenFileSync,
} from "../logs/log-cursor";
import { addEvent } from "../tasks/repository";
import {
  type LastRead,
  readDelay,
  storeDelay,
  type Unstored as UnstoredKinds,
} from "./follow-pace";
import { parseHfOutput } from "./hf-output-parser";
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
 * One statement for a batch of metric rows, whatever its size: the rows travel as one JSON
 * parameter, so neither the statement's text nor its parameters grow with the batch (a
 * backlog's thousands of rows were thousands of placeholders for the database to parse). On a
 * repeated (task, attempt, step, kind): the new row's values, keeping old ones it lacks, and the
 * first row's time, so reading the same lines again changes nothing.
 */
function metricUpsert(taskId: string, attempt: number, rows: MetricRow[]) {
  const json = JSON.stringify(
    rows.map((m) => ({
      step: m.step,
      kind: metricKind(m),
      epoch: m.epoch,
      loss: m.loss ?? null,
      eval_loss: m.evalLoss ?? null,
      learning_rate: m.learningRate ?? null,
      at: m.at,
    })),
  );
  return sql`insert into task_metrics
      (task_id, attempt, step, kind, epoch, loss, eval_loss, learning_rate, at)
    select ${taskId}, ${attempt}, r.step, r.kind, r.epoch, r.loss, r.eval_loss, r.learning_rate,
      to_timestamp(r.at / 1000.0)
    from jsonb_to_recordset(${json}::jsonb) as r(step integer, kind text, epoch double precision,
      loss double precision, eval_loss double precision, learning_rate double precision,
      at double precision)
    on conflict (task_id, attempt, step, kind) do update set
      epoch = coalesce(excluded.epoch, task_metrics.epoch),
      loss = coalesce(excluded.loss, task_metrics.loss),
      eval_loss = coalesce(excluded.eval_loss, task_metrics.eval_loss),
      learning_rate = coalesce(excluded.learning_rate, task_metrics.learning_rate)`;
}

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

/** What was read but is not stored yet: stored together, with the cursors it came from. */
interface Unstored {
  metrics: MetricRow[];
  events: MonitorEvent[];
  /** Progress moved (or a reset of training.log is to be recorded). */
  progress: boolean;
  /** training.log is missing at this offset; whether to warn asks the database (`reportedMissing`). */
  missingAt: number | null;
}

const nothingUnstored = (): Unstored => ({
  metrics: [],
  events: [],
  progress: false,
  missingAt: null,
});

/**
 * While catching up on a long log, what was read is stored once this many metric rows are
 * waiting, so a backlog is stored in bounded transactions rather than one.
 */
const STORE_BATCH_ROWS = 5_000;

/**
 * While stores fail (a database outage), reading stops once this many rows wait unstored; the
 * rest stays in the files and is read once a store lands. A chatty trainer through a long
 * outage would otherwise have every metric it printed held in the studio's memory.
 */
const MAX_UNSTORED_ROWS = 50_000;

/** Which of the attempt's files a file event names, as the monitor reads them. */
const LOG_FILE = "training.log";
const PROGRESS_FILE = "progress.jsonl";

/**
 * Follows one running attempt's files: turns new lines of progress.jsonl and training.log into
 * progress and metrics, publishes log lines as soon as they are read, and stores what they
 * derived in one transaction with the cursors they came from (./follow-pace decides how often
 * it reads and stores). File events (`hint`) are only hints; `tick` reads everything and is also
 * called by the watcher's checks, which guarantees progress when events are missed.
 *
 * Faults stay in the files: a progress.jsonl line that is not a valid event is skipped, counted
 * in `progress.skippedEvents` and reported as a "warning" task event, never applied in part. The
 * monitor keeps training.log open and follows the trainer's output by descriptor, so a log
 * deleted or replaced while the attempt runs is still read to the end; that, a truncation, or a
 * log missing after a restart is reported as a "warning" event naming the byte offset.
 */
export class AttemptMonitor {
  private stopped = false;
  private draining = false;
  private lastRead: LastRead | null = null;
  private readTimer: NodeJS.Timeout | null = null;
  private storeTimer: NodeJS.Timeout | null = null;
  private storing: Promise<void> | null = null;
  private storedAt = 0;
  /** Stores that failed in a row: the next waits longer, and only the first is reported. */
  private storeFailures = 0;
  private unstored = nothingUnstored();
  /** The cursors the database holds for this attempt (as far as this monitor knows). */
  private stored: { log: LogCursor | null; structured: LogCursor | null };
  /** training.log as opened by this monitor: the trainer's output, whatever its path names now. */
  private logFd: number | null = null;
  /** What the path training.log was last seen to be, so each change is reported once. */
  private logPath: "same" | "deleted" | "replaced" | "missing" = "same";
  /** Look at what the path training.log names at the next read (a rename in the folder, a tick). */
  private pathCheckDue = true;
  /** progress.jsonl may hold new lines (an event named it, or a tick). */
  private progressDue = true;
  /** Output was read since `takeActivity` was last asked. */
  private active = false;
  /** What stopped the last tick, if anything: a drain that could not store must not pass as done. */
  private failure: unknown = null;
  /** Reading stopped at `maxUnstoredRows`; the next store that lands starts it again. */
  private heldAtCap = false;

  constructor(
    readonly target: MonitorTarget,
    private readonly db: Db,
    private readonly bus: StudioBus,
    private readonly onError: (err: unknown) => void,
    private readonly maxUnstoredRows = MAX_UNSTORED_ROWS,
  ) {
    this.stored = { log: target.logCursor, structured: target.progressCursor };
  }

  /**
   * Reads everything that is new, and stores at once whatever it derived (cursors alone keep
   * their own pace). Concurrent calls are safe: reads are synchronous, stores one at a time.
   */
  async tick(passes = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.stopped) return;
    this.failure = null;
    try {
      this.pathCheckDue = true;
      this.progressDue = true;
      for (let left = passes; left > 0 && !this.stopped; left--) {
        // A tick stores (or fails, and ends) rather than stop reading at the cap: a drain must
        // not take a held read for the end of the files.
        if (this.atCap()) await this.store();
        const found = this.readOnce();
        if (!found) break;
        if (this.unstored.metrics.length >= STORE_BATCH_ROWS) await this.store();
      }
      // A drain stores now even while stores are failing: it must not end the attempt with
      // anything unstored (a failure here makes it throw, and the next try reads again).
      const due = this.storeDue(true);
      if (due === 0 || (this.draining && due !== null)) await this.store();
      else this.scheduleStore();
    } catch (err) {
      this.failure = err;
      this.report(err);
    }
  }

  private atCap(): boolean {
    return this.unstored.metrics.length + this.unstored.events.length >= this.maxUnstoredRows;
  }

  /** Reports an error, but a failing store only once per run of failures. */
  private report(err: unknown) {
    if (err instanceof StoreFailed) {
      if (this.storeFailures === 1) this.onError(err.message);
      return;
    }
    this.onError(err);
  }

  /**
   * A file event in the task folder: `file` is the name it came with (null: unknown), `kind`
   * "rename" when a name was created, removed or moved. Reads at the pace of ./follow-pace.
   */
  hint(file: string | null = null, kind: "rename" | "change" = "change") {
    if (this.stopped) return;
    if (file === PROGRESS_FILE || file === null) this.progressDue = true;
    if (file !== LOG_FILE && file !== PROGRESS_FILE && file !== null) return;
    if (kind === "rename" || file === null) this.pathCheckDue = true;
    if (this.readTimer) return;
    const delay = readDelay(Date.now(), this.lastRead, this.bus.followsLog(this.target.taskId));
    if (delay === 0) this.paced();
    else this.readTimer = setTimeout(() => this.paced(), delay);
  }

  /** Whether output was read since the last call (the trainer is active). */
  takeActivity(): boolean {
    const active = this.active;
    this.active = false;
    return active;
  }

  /**
   * Reads to the end of both files as they are now (used once the attempt has ended), stores
   * everything with the cursors, then stops. Bounded by what the files hold when it begins: a
   * trainer that still writes (one that could not be identified, so nothing could end it) cannot
   * keep it going. Throws when what it read could not be stored: the attempt must not be ended
   * before its last lines are (the next try reads again from the stored cursors).
   */
  async drain(): Promise<void> {
    this.draining = true;
    const t = this.target;
    const bytes = sizeOf(join(t.taskDir, LOG_FILE)) + sizeOf(join(t.taskDir, PROGRESS_FILE));
    // Each pass reads up to READ_CHUNK of each file; two more cover a reset and the last look.
    await this.tick(Math.ceil(bytes / READ_CHUNK) + 2);
    this.stop();
    if (this.failure) throw this.failure instanceof StoreFailed ? this.failure.cause : this.failure;
  }

  /** Stops reading and storing; what is not stored yet is read again by the next monitor. */
  stop() {
    this.stopped = true;
    if (this.readTimer) clearTimeout(this.readTimer);
    if (this.storeTimer) clearTimeout(this.storeTimer);
    this.readTimer = null;
    this.storeTimer = null;
    const fd = this.logFd;
    this.logFd = null;
    if (fd !== null) {
      // After a store in flight, if any: reads are synchronous, none can be using it.
      try {
        closeSync(fd);
      } catch {}
    }
  }

  /** A read at the follow pace; then the next one, and the store, are scheduled. */
  private paced() {
    this.readTimer = null;
    if (this.stopped) return;
    try {
      const found = this.readOnce();
      // Whatever came meanwhile is read at the next gap; an empty read makes the trainer idle.
      if (found)
        this.readTimer = setTimeout(
          () => this.paced(),
          readDelay(Date.now(), this.lastRead, this.bus.followsLog(this.target.taskId)),
        );
      this.scheduleStore();
    } catch (err) {
      this.onError(err);
    }
  }

  private scheduleStore() {
    if (this.storeTimer || this.stopped) return;
    const delay = this.storeDue(false);
    if (delay === null) return;
    this.storeTimer = setTimeout(() => {
      this.storeTimer = null;
      this.store().then(
        () => this.scheduleStore(),
        (err) => {
          this.report(err);
          this.scheduleStore();
        },
      );
    }, delay);
  }

  /** How long until a store is due (null: nothing to store); `now`: progress is not paced. */
  private storeDue(now: boolean): number | null {
    const u = this.unstored;
    const t = this.target;
    const unstored: UnstoredKinds = {
      events: u.events.length > 0 || u.missingAt !== null,
      progress: u.progress || u.metrics.length > 0,
      cursors:
        !sameCursor(t.logCursor, this.stored.log) ||
        !sameCursor(t.progressCursor, this.stored.structured),
    };
    if (now && unstored.progress && this.storeFailures === 0) return 0;
    return storeDelay(Date.now(), this.storedAt, unstored, this.draining, this.storeFailures);
  }

  /**
   * One read of both files (at most READ_CHUNK of each): lines are published at once, what
   * they derive waits in `unstored`. True when it found lines (more may be waiting).
   */
  private readOnce(): boolean {
    if (this.atCap()) {
      this.heldAtCap = true;
      return false;
    }
    const t = this.target;
    const now = Date.now();
    let progress = t.progress;
    const u = this.unstored;

    let structuredLines: LogLine[] = [];
    let structuredCursor = t.progressCursor;
    if (this.progressDue) {
      const structured = readNewLinesSync(
        join(t.taskDir, PROGRESS_FILE),
        t.progressCursor,
        READ_CHUNK,
      );
      structuredLines = structured.lines;
      structuredCursor = structured.cursor;
      this.progressDue = structured.lines.length > 0;
    }
    for (const line of structuredLines) {
      const read = readProgressLine(line.text);
      if (read === null) continue;
      if ("problem" in read) {
        const skipped = (progress.skippedEvents ?? 0) + 1;
        progress = { ...progress, skippedEvents: skipped };
        if (reportSkipped(skipped)) {
          u.events.push({
            type: "warning",
            message: `progress.jsonl: skipped the line at byte ${line.offset} (${read.problem}); ${skipped} skipped so far`,
            data: { file: PROGRESS_FILE, offset: line.offset, problem: read.problem, skipped },
          });
        }
        continue;
      }
      const next = reduceProgress(progress, { source: "progress", event: read.event, at: now });
      progress = next.state;
      u.metrics.push(...next.metrics);
      if (read.event.event === "warning") u.events.push(trainerWarning(read.event));
    }

    const log = this.readLog(u.events);
    const logLines: LogLine[] = log.lines;
    for (const line of logLines) {
      // A dict line carries no step; the tqdm bar drawn just before it in the same line does.
      for (const parsed of parseHfOutput(line.text)) {
        const next = reduceProgress(progress, { source: "log", event: parsed, at: now });
        progress = next.state;
        u.metrics.push(...next.metrics);
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

    // Progress is stored (and the page's row rewritten) only when it moved: new lines, or a new
    // step of the unfinished bar. A bar redrawn at the same step moves nothing.
    const linesRead = structuredLines.length > 0 || logLines.length > 0;
    const progressMoved =
      progress !== t.progress && (linesRead || progress.step !== t.progress.step);
    if (progressMoved) t.progress = progress;
    u.progress ||= progressMoved || !!log.reset;
    t.logCursor = log.cursor;
    t.progressCursor = structuredCursor;
    this.lastRead = { at: now, found: linesRead };
    if (linesRead) this.active = true;

    if (logLines.length || log.reset) {
      this.bus.publishLog({
        taskId: t.taskId,
        attempt: t.attempt,
        lines: logLines,
        reset: log.reset,
      });
    }
    return linesRead;
  }

  /**
   * Stores what is unstored with the cursors, in one transaction, and tells subscribers of the
   * row and its events. One store at a time; what comes meanwhile waits for the next. On
   * failure nothing is lost: the batch goes back in front of what came since.
   */
  private async store(): Promise<void> {
    while (this.storing) await this.storing.catch(() => {});
    const run = this.storeOnce();
    this.storing = run;
    try {
      await run;
    } finally {
      if (this.storing === run) this.storing = null;
    }
  }

  private async storeOnce(): Promise<void> {
    const t = this.target;
    const batch = this.unstored;
    this.unstored = nothingUnstored();
    this.storedAt = Date.now();
    const cursors = { log: t.logCursor, structured: t.progressCursor };
    try {
      if (batch.missingAt !== null && !(await this.reportedMissing())) {
        batch.events.push(
          logWarning(
            "missing",
            batch.missingAt,
            `training.log is missing (it had been read up to byte ${batch.missingAt}); the lines after that cannot be shown`,
          ),
        );
        batch.missingAt = null;
      }
      const progress = batch.progress || batch.events.length > 0 ? t.progress : null;
      const { row, eventRows } = await this.write({
        log: cursors.log ?? { inode: "", offset: 0 },
        structured: cursors.structured ?? { inode: "", offset: 0 },
        metrics: batch.metrics,
        events: batch.events,
        progress,
        checkpoint: progress?.lastCheckpoint?.path ?? null,
      });
      this.stored = cursors;
      if (this.heldAtCap) {
        this.heldAtCap = false;
        this.hint();
      }
      if (this.storeFailures > 0) {
        this.onError(`stored again after ${this.storeFailures} failed tries`);
        this.storeFailures = 0;
      }
      if (row) {
        if (eventRows.length === 0) this.bus.publishTask(row);
        for (const event of eventRows) this.bus.publishTask({ ...row, event });
      }
    } catch (err) {
      const later = this.unstored;
      this.unstored = {
        metrics: [...batch.metrics, ...later.metrics],
        events: [...batch.events, ...later.events],
        progress: batch.progress || later.progress,
        missingAt: batch.missingAt ?? later.missingAt,
      };
      this.storeFailures += 1;
      throw new StoreFailed(err);
    }
  }

  /** The cursors, with whatever was derived from the lines since, in one transaction. */
  private async write(batch: {
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
        await tx.execute(metricUpsert(t.taskId, t.attempt, mergeMetricRows(batch.metrics)));
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
      return data?.file === LOG_FILE && data.kind === "missing";
    });
  }

  /**
   * New lines of training.log, and a warning in `events` when the path no longer names the file
   * the trainer writes (deleted, replaced), the file shrank, or it is missing after a restart.
   * The path is looked at (opened afresh: on NFS, as with Slurm, an open revalidates what the
   * client caches) on every tick and after a rename in the folder; between those, paced reads
   * read the kept descriptor. The descriptor on the trainer's file is read on its own only once
   * the path has lost it.
   */
  private readLog(events: MonitorEvent[]): ReadResult {
    const t = this.target;
    const at = t.logCursor?.offset ?? 0;
    const cursorInode = t.logCursor?.inode ?? "";
    let followed = this.logFd;
    let fresh: number | null = null;
    let seen = this.logPath;
    if (followed === null || this.pathCheckDue) {
      this.pathCheckDue = false;
      fresh = openIfExistsSync(join(t.taskDir, LOG_FILE));
      const freshInode = fresh === null ? null : String(fstatSync(fresh, { bigint: true }).ino);
      if (fresh !== null && this.logFd === null && !this.stopped) this.logFd = fresh;
      const keptInode =
        this.logFd === null
          ? null
          : this.logFd === fresh
            ? freshInode
            : String(fstatSync(this.logFd, { bigint: true }).ino);
      // What the path is now, next to the file this monitor follows.
      seen =
        keptInode === null
          ? fresh !== null
            ? "same"
            : "missing"
          : fresh === null
            ? "deleted"
            : freshInode === keptInode
              ? "same"
              : "replaced";
      followed = seen === "same" ? fresh : this.logFd;
    }
    try {
      if (seen === "missing") {
        if (at > 0 && this.logPath !== "missing") this.unstored.missingAt = at;
        this.logPath = seen;
        return { lines: [], cursor: t.logCursor ?? { inode: "", offset: 0 } };
      }
      const read = readOpenFileSync(followed!, t.logCursor, READ_CHUNK);
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
      if (fresh !== null && fresh !== this.logFd) closeSync(fresh);
    }
  }
}

function logWarning(kind: string, offset: number, message: string): MonitorEvent {
  return { type: "warning", message, data: { file: "training.log", kind, offset } };
}

function sameCursor(a: LogCursor | null, b: LogCursor | null): boolean {
  return a === b || (a !== null && b !== null && a.inode === b.inode && a.offset === b.offset);
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** What the monitor read could not be stored (kept, and tried again later). */
class StoreFailed extends Error {
  constructor(override readonly cause: unknown) {
    super(`could not store: ${databaseMessage(cause)}`);
    this.name = "StoreFailed";
  }
}

/**
 * What the database said, without the statement and its parameters that a failed query's message
 * repeats (a batch of metric rows runs to megabytes).
 */
export function databaseMessage(err: unknown): string {
  const inner = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const text = inner instanceof Error ? inner.message : String(inner);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
