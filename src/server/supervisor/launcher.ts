import { hostname } from "node:os";
import { isAbsolute, join } from "node:path";
import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import { DIST_DIR } from "../../platform/package-root";
import { trainerCommand } from "../../trainers/launch";
import type { TaskConfig } from "../../trainers/protocol";
import { type AttemptRow, attempts, tasks } from "../db/schema";
import { noRoomReason } from "../disk-space";
import { OPEN_STATUSES } from "../tasks/lifecycle";
import { getTask, transition } from "../tasks/repository";
import type { AttemptWatchers } from "./attempt-watcher";
import { note, publish, type SupervisorContext, taskFolder, writeWithEvent } from "./context";
import { type AttemptHandle, describeHandle, HANDLE_VERSION } from "./executor";
import { failAttempt } from "./outcomes";
import { initialProgress, type ProgressState } from "./progress-state";
import { planStarts, waitingReason } from "./scheduler";
import { writeTaskConfig } from "./task-folder";

/**
 * Starts queued tasks in their turn: picks them (./scheduler, pure), writes the intent (attempt
 * row, status preparing), launches through the executor, stores the handle, and hands the
 * attempt to a watcher. Intent is written before anything is spawned, so a studio killed
 * mid-launch leaves a record the reconciler can judge.
 */
export class Launcher {
  private scheduling: Promise<void> | null = null;
  private scheduleAgain = false;
  private stopped = false;
  /** Queued tasks already told they wait for disk space, in this episode of a full disk. */
  private readonly toldNoRoom = new Set<string>();

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly watchers: AttemptWatchers,
  ) {}

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
        this.ctx.log(`scheduler: ${err}`);
      } finally {
        this.scheduling = null;
      }
    })();
  }

  async stop() {
    this.stopped = true;
    await this.scheduling;
  }

  private async scheduleOnce() {
    const { db, env } = this.ctx;
    const active = await db
      .select({
        id: tasks.id,
        status: tasks.status,
        queuedAt: tasks.queuedAt,
        gpusRequested: tasks.gpusRequested,
        statusReason: tasks.statusReason,
      })
      .from(tasks)
      .where(inArray(tasks.status, [...OPEN_STATUSES]))
      .orderBy(asc(tasks.queuedAt), asc(tasks.id));
    // An automatic retry is queued for later (its backoff): not a candidate before its time.
    const now = Date.now();
    const queued = active.filter(
      (t) => t.status === "queued" && (t.queuedAt?.getTime() ?? 0) <= now,
    );
    if (queued.length === 0) return;
    // Below the free-space floor nothing is launched; the queue waits and starts by itself
    // once space is freed (the poll runs this every second).
    const noRoom = await noRoomReason(env.STUDIO_HOME, env.STUDIO_MIN_FREE_MB);
    if (noRoom) {
      for (const t of queued) {
        if (this.toldNoRoom.has(t.id)) continue;
        this.toldNoRoom.add(t.id);
        await note(this.ctx, t.id, { type: "warning", message: `waiting in the queue: ${noRoom}` });
      }
      return;
    }
    this.toldNoRoom.clear();
    const runningIds = active.filter((t) => t.status !== "queued").map((t) => t.id);
    const open = runningIds.length
      ? await db
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
      concurrency: env.STUDIO_CONCURRENCY,
      gpuIds: env.STUDIO_GPUS,
    });
    for (const u of plan.unschedulable) {
      await writeWithEvent(
        this.ctx,
        (tx) =>
          transition(
            tx,
            u.taskId,
            "cancelled",
            { statusReason: u.reason, finishedAt: new Date() },
            ["queued"],
          ),
        { type: "unschedulable", message: u.reason },
      );
    }
    for (const w of plan.waiting) {
      const task = queued.find((t) => t.id === w.taskId)!;
      const reason = waitingReason(w.reason, task, env.STUDIO_CONCURRENCY);
      if (task.statusReason === reason) continue;
      // Said on the task while it waits (the page and `studio task show` read it); no event.
      const [row] = await db
        .update(tasks)
        .set({ statusReason: reason })
        .where(and(eq(tasks.id, w.taskId), eq(tasks.status, "queued")))
        .returning();
      await publish(this.ctx, row);
    }
    for (const s of plan.starts) await this.launch(s.taskId, s.gpus);
  }

  /** Intent first (attempt row, status preparing), then the process, then its handle. */
  private async launch(taskId: string, gpus: string[]) {
    const { db, env } = this.ctx;
    const prepared = await db.transaction(async (tx) => {
      const task = await transition(tx, taskId, "preparing", { statusReason: null }, ["queued"]);
      if (!task) return null;
      const dir = taskFolder(this.ctx, task);
      const number = task.currentAttempt + 1;
      const resumeFrom =
        task.resumeFromCheckpoint && task.lastCheckpoint
          ? isAbsolute(task.lastCheckpoint)
            ? task.lastCheckpoint
            : join(dir, task.lastCheckpoint)
          : null;
      // training.log and progress.jsonl hold every attempt's output, one after another: this
      // attempt's monitor starts where the previous one's stopped, so nothing an earlier attempt
      // wrote is taken for this one's (its metrics, checkpoints, stop).
      const [previous] = await tx
        .select({ logCursor: attempts.logCursor, progressCursor: attempts.progressCursor })
        .from(attempts)
        .where(and(eq(attempts.taskId, taskId), eq(attempts.number, task.currentAttempt)));
      const [attempt] = await tx
        .insert(attempts)
        .values({
          taskId,
          number,
          host: hostname(),
          gpus,
          resumeFrom,
          executor: env.STUDIO_EXECUTOR,
          logCursor: previous?.logCursor ?? null,
          progressCursor: previous?.progressCursor ?? null,
        })
        .returning();
      const [updated] = await tx
        .update(tasks)
        .set({
          currentAttempt: number,
          // A resumed attempt starts out knowing the checkpoint it continues from (a rollback
          // after divergence can go back to it).
          progress: initialProgress(
            resumeFrom ? resumedCheckpoint(task.progress, task.lastCheckpoint) : null,
          ) as unknown as Record<string, unknown>,
        })
        .where(eq(tasks.id, taskId))
        .returning();
      return { task: updated!, attempt: attempt! };
    });
    if (!prepared) return;
    const { task, attempt } = prepared;
    const dir = taskFolder(this.ctx, task);
    await publish(this.ctx, task, {
      type: "preparing",
      message: `attempt ${attempt.number}: launching`,
      attempt: attempt.number,
    });

    let handle: AttemptHandle;
    try {
      // Whatever queued it (start, retry, auto-resume), the file trained on is the one pinned.
      const datasetProblem = await this.ctx.datasets.verifyPinned(task.datasetPath);
      if (datasetProblem) throw new Error(`the dataset cannot be trained on: ${datasetProblem}`);
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
        pythonPath: this.ctx.hfPeft.interpreter().path,
        allowCommandTrainer: env.STUDIO_ALLOW_COMMAND_TRAINER,
        baseEnv: process.env,
      });
      const { maxRunMinutes, ...limits } = task.limits ?? {};
      handle = await this.ctx.executor.start({
        taskDir: dir,
        attempt: attempt.number,
        command,
        limits: {
          ...limits,
          ...(maxRunMinutes !== undefined ? { maxRunSeconds: maxRunMinutes * 60 } : {}),
        },
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await failAttempt(
        this.ctx,
        { taskId, rowId: attempt.id, number: attempt.number },
        "could not launch",
        message,
        "failed",
      );
      this.schedule();
      return;
    }
    const started = await this.recordHandle(attempt, handle);
    const row = await transition(db, taskId, "training", {}, ["preparing"]);
    const summary = describeHandle(handle);
    await publish(this.ctx, row, {
      type: "started",
      message: `attempt ${attempt.number} started (${summary.label})`,
      attempt: attempt.number,
      data: { ...summary.facts, gpus },
    });
    this.watchers.follow(row ?? task, started, handle);
    // A cancel that arrived while the launch was in flight is carried out now.
    const fresh = await getTask(db, taskId);
    if (fresh?.cancelRequestedAt) {
      await this.ctx.executor.cancel(handle, {
        requestedAt: fresh.cancelRequestedAt,
        graceMs: env.STUDIO_CANCEL_GRACE_MS,
      });
    }
  }

  /** Stores a confirmed launch's handle (versioned) with its identity columns. */
  async recordHandle(attempt: AttemptRow, handle: AttemptHandle): Promise<AttemptRow> {
    const summary = describeHandle(handle);
    const [row] = await this.ctx.db
      .update(attempts)
      .set({
        handle: { ...handle, version: handle.version ?? HANDLE_VERSION } as unknown as Record<
          string,
          unknown
        >,
        executor: handle.kind,
        pid: summary.pid,
        processStartTime: summary.processStartTime,
        bootId: summary.bootId,
        ...(summary.host ? { host: summary.host } : {}),
        // A rebuilt attempt keeps the start its runner recorded.
        startedAt: attempt.startedAt ?? new Date(),
      })
      .where(eq(attempts.id, attempt.id))
      .returning();
    return row!;
  }
}

/** The step and path of the checkpoint a resumed attempt continues from, when the progress knows it. */
function resumedCheckpoint(
  progress: Record<string, unknown>,
  lastCheckpoint: string | null,
): { step: number; path: string } | null {
  const known = (progress as Partial<ProgressState>).lastCheckpoint;
  return known && known.path === lastCheckpoint ? known : null;
}
