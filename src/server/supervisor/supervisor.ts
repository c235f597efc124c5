import { hostname } from "node:os";
import { isAbsolute, join } from "node:path";
import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import { runPreflight } from "../../trainers/hf-peft/preflight";
import { trainerCommand } from "../../trainers/launch";
import type { TaskConfig } from "../../trainers/protocol";
import type { Db } from "../db/client";
import { type AttemptRow, attempts, type TaskRow, tasks } from "../db/schema";
import type { Env } from "../env";
import type { StudioBus } from "../events/bus";
import { taskDir } from "../home";
import { DIST_DIR } from "../package-root";
import { addEvent, getTask, transition } from "../tasks/repository";
import { type AttemptHandle, describeHandle, type Executor, type ExitRecord } from "./executor";
import { AttemptMonitor } from "./monitor";
import { initialProgress, type ProgressState } from "./progress-state";
import { outcomeOfExit, TERMINATED_UNEXPECTEDLY } from "./reconcile";
import { planStarts } from "./scheduler";
import { TaskActionError } from "./task-action-error";
import { writeTaskConfig } from "./task-folder";

/** The studio checks every running attempt at least this often; file events make it sooner. */
const POLL_MS = 1_000;

export interface Outcome {
  status: "completed" | "failed" | "cancelled";
  reason: string;
  exitCode: number | null;
  signal: string | null;
  error?: string;
  endedAt?: Date;
}

interface Running {
  monitor: AttemptMonitor;
  handle: AttemptHandle;
  unwatch: () => void;
  finishing: boolean;
  exitLookPending: boolean;
}

/**
 * Owns every running attempt of this studio: launches queued tasks as detached runners,
 * follows their files, records their outcome, and carries out cancel, pause and resume.
 * Exactly one supervisor runs per database (see the lock taken by the server).
 */
export class Supervisor {
  private readonly running = new Map<string, Running>();
  /** How long a launch may take to confirm; boot reconciliation waits this long for a half-started one. */
  readonly launchTimeoutMs = 10_000;
  private scheduling: Promise<void> | null = null;
  private scheduleAgain = false;
  private poller: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly env: Env,
    private readonly db: Db,
    private readonly bus: StudioBus,
    readonly executor: Executor,
    private readonly log: (msg: string) => void,
  ) {}

  private taskDir(id: string) {
    return taskDir(this.env.STUDIO_HOME, id);
  }

  private async publish(
    row: TaskRow | undefined,
    event?: { type: string; message: string; attempt?: number; data?: Record<string, unknown> },
  ) {
    if (!row) return;
    const ev = event
      ? await addEvent(this.db, row.id, event.type, event.message, {
          attempt: event.attempt,
          data: event.data,
        })
      : undefined;
    this.bus.publishTask({ ...row, event: ev });
  }

  /** Starts the periodic check that backs up file events. Boot reconciliation runs before. */
  startLoop() {
    this.poller = setInterval(() => {
      for (const r of this.running.values()) void this.check(r);
      this.schedule();
    }, POLL_MS);
    this.schedule();
  }

  /** Stops following trainers. The trainers themselves keep running; the next studio re-attaches. */
  async stop() {
    this.stopped = true;
    if (this.poller) clearInterval(this.poller);
    for (const r of this.running.values()) {
      r.unwatch();
      r.monitor.stop();
    }
    await this.scheduling;
  }

  // ---- user actions -------------------------------------------------------------------------

  private async mustGet(id: string): Promise<TaskRow> {
    const task = await getTask(this.db, id);
    if (!task) throw new TaskActionError("NOT_FOUND", `no task with id ${id}`);
    return task;
  }

  /** Idempotent: a task already queued or running is left as it is. */
  async start(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (task.status !== "pending") {
      if (["queued", "preparing", "training", "paused"].includes(task.status)) return task;
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; use retry to run it again`,
      );
    }
    await this.preflight(task);
    const row = await transition(this.db, id, "queued", { queuedAt: new Date() }, ["pending"]);
    if (row) await this.publish(row, { type: "queued", message: "queued" });
    this.schedule();
    return row ?? (await this.mustGet(id));
  }

  /** A new attempt with the same settings, from the last checkpoint when asked. */
  async retry(id: string, fromCheckpoint: boolean): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (!["failed", "cancelled", "interrupted"].includes(task.status)) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a failed, cancelled or interrupted task can run again`,
      );
    }
    await this.preflight(task);
    if (fromCheckpoint && !task.lastCheckpoint) {
      throw new TaskActionError("CONFLICT", `task ${id} has no checkpoint to resume from`);
    }
    const row = await transition(
      this.db,
      id,
      "queued",
      {
        queuedAt: new Date(),
        cancelRequestedAt: null,
        resumeFromCheckpoint: fromCheckpoint,
        statusReason: null,
        finishedAt: null,
      },
      [task.status],
    );
    if (!row) throw new TaskActionError("CONFLICT", `task ${id} changed meanwhile; try again`);
    await this.publish(row, {
      type: "queued",
      message: fromCheckpoint
        ? `queued to resume from ${task.lastCheckpoint}`
        : "queued to run again",
    });
    this.schedule();
    return row;
  }

  async cancel(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (task.status === "pending" || task.status === "queued") {
      const row = await transition(
        this.db,
        id,
        "cancelled",
        { finishedAt: new Date(), statusReason: "cancelled before it started" },
        [task.status],
      );
      if (!row) return this.cancel(id);
      await this.publish(row, { type: "cancelled", message: "cancelled before it started" });
      this.schedule();
      return row;
    }
    if (!["preparing", "training", "paused"].includes(task.status)) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; there is nothing to cancel`,
      );
    }
    const [row] = await this.db
      .update(tasks)
      .set({ cancelRequestedAt: task.cancelRequestedAt ?? new Date(), updatedAt: new Date() })
      .where(eq(tasks.id, id))
      .returning();
    if (!task.cancelRequestedAt) {
      await this.publish(row, {
        type: "cancel-requested",
        message: `cancel requested; the trainer has ${Math.round(this.env.STUDIO_CANCEL_GRACE_MS / 1000)} s to save a checkpoint`,
      });
    }
    const r = this.running.get(id);
    if (r) {
      // A stopped group cannot act on SIGTERM: wake it first.
      if (task.status === "paused") await this.executor.signal(r.handle, "SIGCONT");
      await this.executor.signal(r.handle, "SIGTERM");
    }
    return row!;
  }

  async pause(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    const r = this.running.get(id);
    if (task.status !== "training" || !r) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a training task can pause`,
      );
    }
    if (!(await this.executor.signal(r.handle, "SIGSTOP"))) {
      throw new TaskActionError("CONFLICT", `task ${id}'s trainer is no longer running`);
    }
    const row = await transition(this.db, id, "paused", {}, ["training"]);
    await this.publish(row, { type: "paused", message: "paused" });
    return row ?? (await this.mustGet(id));
  }

  async resume(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    const r = this.running.get(id);
    if (task.status !== "paused" || !r) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a paused task can resume`,
      );
    }
    await this.executor.signal(r.handle, "SIGCONT");
    const row = await transition(this.db, id, "training", {}, ["paused"]);
    await this.publish(row, { type: "resumed", message: "resumed" });
    return row ?? (await this.mustGet(id));
  }

  /**
   * A Python trainer is checked before it is queued (interpreter, torch, transformers, peft,
   * GPUs), so a missing package is a clear refusal now rather than a failed run later.
   */
  private async preflight(task: TaskRow) {
    if (task.trainer !== "hf-peft") return;
    const result = await runPreflight(this.env.STUDIO_PYTHON);
    if (!result.ok) {
      throw new TaskActionError(
        "PRECONDITION_FAILED",
        `the Python trainer cannot run here (${this.env.STUDIO_PYTHON}): ${result.problems.join("; ")}`,
      );
    }
  }

  // ---- scheduling and launch -----------------------------------------------------------------

  /** Runs the scheduler; calls while it runs collapse into one more pass. */
  schedule() {
    if (this.stopped) return;
    if (this.scheduling) {
      this.scheduleAgain = true;
      return;
    }
    this.scheduling = (async () => {
      try {
        do {
          this.scheduleAgain = false;
          await this.scheduleOnce();
        } while (this.scheduleAgain && !this.stopped);
      } catch (err) {
        this.log(`scheduler: ${err}`);
      } finally {
        this.scheduling = null;
      }
    })();
  }

  private async scheduleOnce() {
    const active = await this.db
      .select({
        id: tasks.id,
        status: tasks.status,
        queuedAt: tasks.queuedAt,
        gpusRequested: tasks.gpusRequested,
      })
      .from(tasks)
      .where(inArray(tasks.status, ["queued", "preparing", "training", "paused"]))
      .orderBy(asc(tasks.queuedAt), asc(tasks.id));
    const queued = active.filter((t) => t.status === "queued");
    if (queued.length === 0) return;
    const runningIds = active.filter((t) => t.status !== "queued").map((t) => t.id);
    const open = runningIds.length
      ? await this.db
          .select({ taskId: attempts.taskId, gpus: attempts.gpus })
          .from(attempts)
          .where(and(inArray(attempts.taskId, runningIds), isNull(attempts.endedAt)))
      : [];
    const plan = planStarts({
      queued: queued.map((t, position) => ({
        taskId: t.id,
        gpusRequested: t.gpusRequested,
        position,
      })),
      running: runningIds.map((id) => ({
        taskId: id,
        gpus: open.find((a) => a.taskId === id)?.gpus ?? [],
      })),
      concurrency: this.env.STUDIO_CONCURRENCY,
      gpuIds: this.env.STUDIO_GPUS,
    });
    for (const u of plan.unschedulable) {
      const row = await transition(
        this.db,
        u.taskId,
        "cancelled",
        { statusReason: u.reason, finishedAt: new Date() },
        ["queued"],
      );
      await this.publish(row, { type: "unschedulable", message: u.reason });
    }
    for (const s of plan.starts) await this.launch(s.taskId, s.gpus);
  }

  /** Intent first (attempt row, status preparing), then the process, then its handle. */
  private async launch(taskId: string, gpus: string[]) {
    const dir = this.taskDir(taskId);
    const prepared = await this.db.transaction(async (tx) => {
      const [task] = await tx
        .update(tasks)
        .set({ status: "preparing", updatedAt: new Date(), statusReason: null })
        .where(and(eq(tasks.id, taskId), eq(tasks.status, "queued")))
        .returning();
      if (!task) return null;
      const number = task.currentAttempt + 1;
      const resumeFrom =
        task.resumeFromCheckpoint && task.lastCheckpoint
          ? isAbsolute(task.lastCheckpoint)
            ? task.lastCheckpoint
            : join(dir, task.lastCheckpoint)
          : null;
      const [attempt] = await tx
        .insert(attempts)
        .values({
          taskId,
          number,
          host: hostname(),
          gpus,
          resumeFrom,
          executor: this.env.STUDIO_EXECUTOR,
        })
        .returning();
      const [updated] = await tx
        .update(tasks)
        .set({
          currentAttempt: number,
          progress: initialProgress() as unknown as Record<string, unknown>,
        })
        .where(eq(tasks.id, taskId))
        .returning();
      return { task: updated!, attempt: attempt! };
    });
    if (!prepared) return;
    const { task, attempt } = prepared;
    await this.publish(task, {
      type: "preparing",
      message: `attempt ${attempt.number}: launching`,
      attempt: attempt.number,
    });

    try {
      const config: TaskConfig = {
        taskId,
        attempt: attempt.number,
        trainer: task.trainer,
        model: task.model,
        mode: task.mode,
        dataset: { path: task.datasetPath, format: task.datasetFormat },
        taskDir: dir,
        hyperparameters: task.hyperparameters,
        resumeFrom: attempt.resumeFrom,
        gpus,
        command: task.command ?? null,
      };
      writeTaskConfig(dir, config);
      const command = trainerCommand(config, {
        nodePath: process.execPath,
        distDir: DIST_DIR,
        pythonPath: this.env.STUDIO_PYTHON,
        allowCommandTrainer: this.env.STUDIO_ALLOW_COMMAND_TRAINER,
        baseEnv: process.env,
      });
      const handle = await this.executor.start({ taskDir: dir, attempt: attempt.number, command });
      const started = await this.recordHandle(attempt, handle);
      const row = await transition(this.db, taskId, "training", {}, ["preparing"]);
      const summary = describeHandle(handle);
      await this.publish(row, {
        type: "started",
        message: `attempt ${attempt.number} started (${summary.label})`,
        attempt: attempt.number,
        data: { ...summary.facts, gpus },
      });
      this.follow(task, started, handle);
      // A cancel that arrived while the launch was in flight is carried out now.
      const fresh = await getTask(this.db, taskId);
      if (fresh?.cancelRequestedAt) await this.executor.signal(handle, "SIGTERM");
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await this.db
        .update(attempts)
        .set({ error: message, endedAt: new Date() })
        .where(eq(attempts.id, attempt.id));
      const row = await transition(
        this.db,
        taskId,
        "failed",
        { statusReason: message, finishedAt: new Date() },
        ["preparing"],
      );
      await this.publish(row, {
        type: "failed",
        message: `could not launch: ${message}`,
        attempt: attempt.number,
      });
    }
  }

  async recordHandle(attempt: AttemptRow, handle: AttemptHandle): Promise<AttemptRow> {
    const summary = describeHandle(handle);
    const [row] = await this.db
      .update(attempts)
      .set({
        handle: handle as unknown as Record<string, unknown>,
        executor: handle.kind,
        pid: summary.pid,
        processStartTime: summary.processStartTime,
        bootId: summary.bootId,
        ...(summary.host ? { host: summary.host } : {}),
        startedAt: new Date(),
      })
      .where(eq(attempts.id, attempt.id))
      .returning();
    return row!;
  }

  // ---- following running attempts -----------------------------------------------------------

  private monitorFor(task: TaskRow, attempt: AttemptRow): AttemptMonitor {
    return new AttemptMonitor(
      {
        taskId: task.id,
        attempt: attempt.number,
        attemptRowId: attempt.id,
        taskDir: this.taskDir(task.id),
        logCursor: attempt.logCursor ?? null,
        progressCursor: attempt.progressCursor ?? null,
        progress: (task.progress as unknown as ProgressState) ?? initialProgress(),
      },
      this.db,
      this.bus,
      (err) => this.log(`monitor ${task.id}: ${err}`),
    );
  }

  /** Reads what an attempt wrote while no studio was watching, before its outcome is recorded. */
  async catchUp(task: TaskRow, attempt: AttemptRow) {
    await this.monitorFor(task, attempt).drain();
  }

  /** Monitors an attempt until its outcome is recorded. Used at launch and at re-attach. */
  follow(task: TaskRow, attempt: AttemptRow, handle: AttemptHandle) {
    const monitor = this.monitorFor(task, attempt);
    const entry: Running = {
      monitor,
      handle,
      unwatch: () => {},
      finishing: false,
      exitLookPending: false,
    };
    this.running.set(task.id, entry);
    entry.unwatch = this.executor.watch(this.taskDir(task.id), () => {
      monitor.hint();
      this.lookForExit(entry);
    });
    void this.check(entry);
  }

  /**
   * A file event: has exit.json appeared? Only that cheap look, and at most every 50 ms: a
   * trainer printing hundreds of lines a second raises as many events, and the full check
   * (processes, database) runs on the 1 s poll.
   */
  private lookForExit(r: Running) {
    if (r.exitLookPending || r.finishing || this.stopped) return;
    r.exitLookPending = true;
    setTimeout(async () => {
      r.exitLookPending = false;
      const { taskId, attempt } = r.monitor.target;
      const exit = await this.executor.readOutcome(this.taskDir(taskId), attempt).catch(() => null);
      if (exit) await this.finish(r, exit);
    }, 50);
  }

  /** Has the attempt ended? Also escalates a cancel whose grace period is over. */
  private async check(r: Running) {
    if (r.finishing || this.stopped) return;
    const { taskId, attempt } = r.monitor.target;
    void r.monitor.tick();
    const exit = await this.executor.readOutcome(this.taskDir(taskId), attempt);
    if (exit) return this.finish(r, exit);
    const state = await this.executor.probe(r.handle);
    if (state === "gone" || state === "other-boot") {
      // The runner writes exit.json before it exits; look once more to close that window.
      const late = await this.executor.readOutcome(this.taskDir(taskId), attempt);
      if (late) return this.finish(r, late);
      return this.lose(
        r,
        state === "gone"
          ? "the runner disappeared without recording an exit"
          : "the machine restarted",
      );
    }
    const task = await getTask(this.db, taskId);
    if (
      task?.cancelRequestedAt &&
      Date.now() - task.cancelRequestedAt.getTime() > this.env.STUDIO_CANCEL_GRACE_MS
    ) {
      if (await this.executor.signal(r.handle, "SIGKILL")) {
        this.log(`task ${taskId}: grace period over, SIGKILL to its process group`);
      }
    }
  }

  private async finish(r: Running, exit: ExitRecord) {
    if (r.finishing) return;
    r.finishing = true;
    const { taskId, attempt, attemptRowId } = r.monitor.target;
    r.unwatch();
    await r.monitor.drain();
    this.running.delete(taskId);
    const task = await getTask(this.db, taskId);
    if (!task) return;
    await this.finalize(task, attemptRowId, attempt, {
      ...outcomeOfExit(exit, task.cancelRequestedAt !== null),
      exitCode: exit.exitCode,
      signal: exit.signal,
      error: exit.error,
      endedAt: new Date(exit.endedAt),
    });
    this.schedule();
  }

  /** Records the outcome of an attempt (also used by boot reconciliation). */
  async finalize(task: TaskRow, attemptRowId: number, attempt: number, outcome: Outcome) {
    await this.db
      .update(attempts)
      .set({
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        error: outcome.error ?? null,
        endedAt: outcome.endedAt ?? new Date(),
      })
      .where(eq(attempts.id, attemptRowId));
    const row = await transition(
      this.db,
      task.id,
      outcome.status,
      { statusReason: outcome.reason, finishedAt: new Date() },
      ["preparing", "training", "paused"],
    );
    const how =
      outcome.signal !== null
        ? ` (signal ${outcome.signal})`
        : outcome.exitCode !== null
          ? ` (exit code ${outcome.exitCode})`
          : "";
    await this.publish(row, {
      type: "exited",
      message: `${outcome.status}: ${outcome.reason}${how}`,
      attempt,
      data: { exitCode: outcome.exitCode, signal: outcome.signal },
    });
  }

  /** The machine restarted under a running attempt: nothing of it runs any more. */
  async interrupt(
    task: TaskRow,
    attempt: AttemptRow,
    decision: { reason: string; resumable: boolean; autoResume: boolean },
  ) {
    await this.db
      .update(attempts)
      .set({ error: decision.reason, endedAt: new Date() })
      .where(eq(attempts.id, attempt.id));
    const row = await transition(
      this.db,
      task.id,
      "interrupted",
      { statusReason: decision.reason, finishedAt: new Date() },
      ["preparing", "training", "paused"],
    );
    await this.publish(row, {
      type: "interrupted",
      message: `${decision.reason}${decision.resumable ? "; it can resume from its last checkpoint" : ""}`,
      attempt: attempt.number,
    });
    if (decision.autoResume) await this.retry(task.id, true);
  }

  /** Follows an attempt that outlived the previous studio, in the state its trainer is really in. */
  async reattach(
    task: TaskRow,
    attempt: AttemptRow,
    handle: AttemptHandle,
    decision: { paused: boolean; continueCancel: boolean },
  ) {
    const status = decision.paused ? "paused" : "training";
    const row =
      task.status === status ? task : await transition(this.db, task.id, status, {}, [task.status]);
    const summary = describeHandle(handle);
    await this.publish(row, {
      type: "recovered",
      message: `the studio restarted; training went on (${summary.label})`,
      attempt: attempt.number,
      data: summary.facts,
    });
    this.follow(row ?? task, attempt, handle);
    if (decision.continueCancel) {
      if (decision.paused) await this.executor.signal(handle, "SIGCONT");
      await this.executor.signal(handle, "SIGTERM");
    }
  }

  private async lose(r: Running, what: string) {
    if (r.finishing) return;
    r.finishing = true;
    r.unwatch();
    await r.monitor.drain();
    const { taskId, attempt, attemptRowId } = r.monitor.target;
    this.running.delete(taskId);
    await this.failUnexpectedly(taskId, attemptRowId, attempt, what);
    this.schedule();
  }

  async failUnexpectedly(taskId: string, attemptRowId: number, attempt: number, what: string) {
    await this.db
      .update(attempts)
      .set({ error: what, endedAt: new Date() })
      .where(eq(attempts.id, attemptRowId));
    const reason = TERMINATED_UNEXPECTEDLY;
    const row = await transition(
      this.db,
      taskId,
      "failed",
      { statusReason: `${reason}: ${what}`, finishedAt: new Date() },
      ["preparing", "training", "paused"],
    );
    await this.publish(row, { type: "lost", message: `${reason}: ${what}`, attempt });
  }

  isFollowing(taskId: string): boolean {
    return this.running.has(taskId);
  }
}
