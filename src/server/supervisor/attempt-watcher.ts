import type { AttemptRow, TaskRow } from "../db/schema";
import { type SupervisorContext, taskFolder } from "./context";
import type { AttemptHandle } from "./executor";
import { AttemptMonitor } from "./monitor";
import type { AttemptRef } from "./outcomes";
import { initialProgress, type ProgressState } from "./progress-state";
import { StepClock } from "./stall-watch";

/**
 * A followed attempt whose processes look the same, which reports no steps and needs nothing
 * else is fully checked (the reconciler, its database read and records) this often; the
 * supervisor's poll looks at its processes every second (`poll`).
 */
const FULL_CHECK_MS = 10_000;

/** The runner's records: one appearing or replaced is judged at once. */
const RECORDS = new Set(["exit.json", "runner.json"]);

/**
 * Follows one running attempt: its monitor turns the files into progress and log lines, and
 * its checks hand what the executor sees to the reconciler (`check` below). File events are
 * hints; the supervisor's poll (`poll`) runs a check whenever the processes look different, and
 * at least every FULL_CHECK_MS whatever happens.
 */
export class AttemptWatcher {
  readonly ref: AttemptRef;
  readonly monitor: AttemptMonitor;
  readonly dir: string;
  private unwatch: () => void = () => {};
  private closed = false;
  private checking: Promise<void> | null = null;
  private soon: NodeJS.Timeout | null = null;
  /** When the last full check began. */
  private checkedAt = 0;
  /** The executor's cheap look at the processes at the last poll (see Executor.quickLook). */
  private lastLook: string | null = null;
  /**
   * The last check found a plain training attempt (following, no cancel, not paused) and nothing
   * that must be looked at again soon; commands and other decisions clear it.
   */
  settled = false;
  private readonly warned = new Set<string>();
  /** When the attempt's steps moved, for the stall watchdog (./stall-watch). */
  readonly steps = new StepClock();
  /** The stall being reported, if any: one warning per stall, one note when steps resume. */
  stall: { step: number; since: number } | null = null;
  /** The divergence watchdog has judged this attempt (./divergence-guard): it speaks once. */
  divergenceReported = false;

  constructor(
    private readonly ctx: SupervisorContext,
    task: TaskRow,
    attempt: AttemptRow,
    public handle: AttemptHandle,
    private readonly decide: (watcher: AttemptWatcher) => Promise<void>,
  ) {
    this.ref = { taskId: task.id, rowId: attempt.id, number: attempt.number };
    this.dir = taskFolder(ctx, task);
    this.monitor = monitorFor(ctx, task, attempt);
  }

  start() {
    this.unwatch = this.ctx.executor.watch(this.dir, (file, kind) => this.hint(file, kind));
    void this.check();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Reads new output and reconciles once; calls made while one runs share it. Errors (a
   * database that does not answer) are logged and the next poll tries again.
   */
  check(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.checking) return this.checking;
    this.checking = (async () => {
      try {
        this.checkedAt = Date.now();
        this.settled = false;
        void this.monitor.tick();
        await this.decide(this);
      } catch (err) {
        this.ctx.log(`task ${this.ref.taskId}: check failed: ${err}`);
      } finally {
        this.checking = null;
      }
    })();
    return this.checking;
  }

  /** Checks again shortly (a runner finishing its exit, a record that just appeared). */
  checkSoon(delayMs = 50) {
    if (this.closed || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      void this.check();
    }, delayMs);
  }

  /**
   * The supervisor's poll, every second. A full check when the processes look different (a
   * runner gone, a trainer stopped or a zombie), when the executor has no cheap look (Slurm),
   * when the last check left something to look at again (a cancel's grace, a pause), when the
   * trainer reports steps (the stall and divergence watchdogs judge every second), and every
   * FULL_CHECK_MS. Otherwise a quiet attempt costs one /proc read per process.
   */
  poll(now = Date.now()) {
    if (this.closed) return;
    const look = this.ctx.executor.quickLook(this.handle);
    const changed = look !== this.lastLook;
    this.lastLook = look;
    const reportsSteps = this.monitor.target.progress.step != null;
    if (
      look === null ||
      changed ||
      !this.settled ||
      reportsSteps ||
      now - this.checkedAt >= FULL_CHECK_MS
    ) {
      void this.check();
    }
  }

  /**
   * A file event. A trainer printing hundreds of lines a second raises as many: the monitor
   * reads at its pace, and a full check runs only for the runner's records (or an event
   * without a name).
   */
  private hint(file: string | null, kind: "rename" | "change") {
    if (this.closed) return;
    this.monitor.hint(file, kind);
    if (file === null || RECORDS.has(file)) this.checkSoon();
  }

  /** True the first time this warning is given for this attempt in this studio. */
  firstWarning(text: string): boolean {
    if (this.warned.has(text)) return false;
    this.warned.add(text);
    return true;
  }

  /** Stops following; reads to the end of both files first when the attempt has ended. */
  async close(drain: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.soon) clearTimeout(this.soon);
    this.unwatch();
    if (drain) await this.monitor.drain();
    else this.monitor.stop();
  }
}

/** A monitor that resumes where the stored cursors and progress of the attempt left off. */
export function monitorFor(
  ctx: SupervisorContext,
  task: TaskRow,
  attempt: AttemptRow,
): AttemptMonitor {
  return new AttemptMonitor(
    {
      taskId: task.id,
      attempt: attempt.number,
      attemptRowId: attempt.id,
      taskDir: taskFolder(ctx, task),
      logCursor: attempt.logCursor ?? null,
      progressCursor: attempt.progressCursor ?? null,
      progress: (task.progress as unknown as ProgressState) ?? initialProgress(),
    },
    ctx.db,
    ctx.bus,
    (err) => ctx.log(`monitor ${task.id}: ${err}`),
  );
}

/** The attempts this studio follows, one per task. */
export class AttemptWatchers {
  private readonly byTask = new Map<string, AttemptWatcher>();
  /** After `stopAll`: a boot still under way follows nothing more (the next studio will). */
  private stopped = false;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly decide: (watcher: AttemptWatcher) => Promise<void>,
  ) {}

  follow(task: TaskRow, attempt: AttemptRow, handle: AttemptHandle): AttemptWatcher {
    const watcher = new AttemptWatcher(this.ctx, task, attempt, handle, this.decide);
    if (this.stopped) return watcher;
    this.byTask.set(task.id, watcher);
    watcher.start();
    return watcher;
  }

  get(taskId: string): AttemptWatcher | undefined {
    return this.byTask.get(taskId);
  }

  /** Stops following the task's attempt (draining it when it ended). */
  async release(watcher: AttemptWatcher, drain: boolean) {
    if (this.byTask.get(watcher.ref.taskId) === watcher) this.byTask.delete(watcher.ref.taskId);
    await watcher.close(drain);
  }

  all(): AttemptWatcher[] {
    return [...this.byTask.values()];
  }

  async stopAll() {
    this.stopped = true;
    const all = this.all();
    this.byTask.clear();
    await Promise.all(all.map((w) => w.close(false)));
  }
}
