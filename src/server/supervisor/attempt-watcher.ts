import { statSync } from "node:fs";
import { exitRecordPath } from "../../runner/records";
import type { AttemptRow, TaskRow } from "../db/schema";
import { type SupervisorContext, taskFolder } from "./context";
import type { AttemptHandle } from "./executor";
import { AttemptMonitor } from "./monitor";
import type { AttemptRef } from "./outcomes";
import { initialProgress, type ProgressState } from "./progress-state";
import { StepClock } from "./stall-watch";

/**
 * Follows one running attempt: its monitor turns the files into progress and log lines, and
 * its checks hand what the executor sees to the reconciler (`check` below). File events are
 * hints; the supervisor's poll calls `check` every second whatever happens.
 */
export class AttemptWatcher {
  readonly ref: AttemptRef;
  readonly monitor: AttemptMonitor;
  readonly dir: string;
  private unwatch: () => void = () => {};
  private closed = false;
  private checking: Promise<void> | null = null;
  private soon: NodeJS.Timeout | null = null;
  /** exit.json as last judged (inode, mtime, size): a record already judged is not looked at per event. */
  private exitSeen = "";
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
    this.unwatch = this.ctx.executor.watch(this.dir, () => this.hint());
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
        void this.monitor.tick();
        this.exitSeen = exitStamp(this.dir);
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
   * A file event. A trainer printing hundreds of lines a second raises as many: only the
   * monitor reads (coalesced), and a full check runs only when exit.json changed.
   */
  private hint() {
    if (this.closed) return;
    this.monitor.hint();
    if (exitStamp(this.dir) !== this.exitSeen) this.checkSoon();
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

function exitStamp(dir: string): string {
  try {
    const st = statSync(exitRecordPath(dir));
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch {
    return "";
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

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly decide: (watcher: AttemptWatcher) => Promise<void>,
  ) {}

  follow(task: TaskRow, attempt: AttemptRow, handle: AttemptHandle): AttemptWatcher {
    const watcher = new AttemptWatcher(this.ctx, task, attempt, handle, this.decide);
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
    const all = this.all();
    this.byTask.clear();
    await Promise.all(all.map((w) => w.close(false)));
  }
}
