import { eq } from "drizzle-orm";
import type { Hyperparameters } from "../../trainers/protocol";
import { type TaskRow, tasks } from "../db/schema";
import { noRoomReason } from "../disk-space";
import { HF_PEFT_SETUP_COMMAND } from "../hf-peft-readiness";
import { ACTIVE_STATUSES, OPEN_STATUSES, RETRYABLE_STATUSES } from "../tasks/lifecycle";
import { getTask, transition } from "../tasks/repository";
import type { AttemptWatchers } from "./attempt-watcher";
import { publish, type SupervisorContext, writeWithEvent } from "./context";
import { TaskActionError } from "./task-action-error";

/**
 * What a person asks of a task: start, retry, cancel, pause, resume. Each checks the task's
 * status, writes through the lifecycle table, and reaches the trainer only through the
 * executor, with the handle of the attempt being followed.
 */
export class Commands {
  constructor(
    private readonly ctx: SupervisorContext,
    private readonly watchers: AttemptWatchers,
    private readonly schedule: () => void,
  ) {}

  private async mustGet(id: string): Promise<TaskRow> {
    const task = await getTask(this.ctx.db, id);
    if (!task) throw new TaskActionError("NOT_FOUND", `no task with id ${id}`);
    return task;
  }

  /** Idempotent: a task already queued or running is left as it is. */
  async start(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (task.status !== "pending") {
      if (OPEN_STATUSES.includes(task.status)) return task;
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; use retry to run it again`,
      );
    }
    await this.preflight(task);
    await this.assertDiskSpace();
    const row = await transition(this.ctx.db, id, "queued", { queuedAt: new Date() }, ["pending"]);
    if (row) await publish(this.ctx, row, { type: "queued", message: "queued" });
    this.schedule();
    return row ?? (await this.mustGet(id));
  }

  /**
   * A new attempt with the same settings, from the last checkpoint when asked. `automatic`: the
   * studio's own (the retry policy, ./retry-policy, or a rollback after divergence,
   * ./divergence-guard): queued to start no sooner than `notBefore`, and not refused on a full
   * disk (the launcher waits for space).
   */
  async retry(id: string, fromCheckpoint: boolean, automatic?: AutomaticRun): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (!RETRYABLE_STATUSES.includes(task.status)) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a failed, cancelled or interrupted task can run again`,
      );
    }
    await this.preflight(task);
    if (!automatic) await this.assertDiskSpace();
    if (fromCheckpoint && !task.lastCheckpoint) {
      throw new TaskActionError("CONFLICT", `task ${id} has no checkpoint to resume from`);
    }
    const row = await writeWithEvent(
      this.ctx,
      (tx) =>
        transition(
          tx,
          id,
          "queued",
          {
            queuedAt: automatic?.notBefore ?? new Date(),
            cancelRequestedAt: null,
            stopRequest: null,
            ...(automatic ? automaticChanges(task, automatic) : {}),
            resumeFromCheckpoint: fromCheckpoint,
            statusReason: null,
            finishedAt: null,
          },
          [task.status],
        ),
      automatic
        ? { type: automatic.event, message: automatic.message }
        : {
            type: "queued",
            message: fromCheckpoint
              ? `queued to resume from ${task.lastCheckpoint}`
              : "queued to run again",
          },
    );
    if (!row) throw new TaskActionError("CONFLICT", `task ${id} changed meanwhile; try again`);
    this.schedule();
    return row;
  }

  async cancel(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    if (task.status === "pending" || task.status === "queued") {
      const row = await writeWithEvent(
        this.ctx,
        (tx) =>
          transition(
            tx,
            id,
            "cancelled",
            { finishedAt: new Date(), statusReason: "cancelled before it started" },
            [task.status],
          ),
        { type: "cancelled", message: "cancelled before it started" },
      );
      if (!row) return this.cancel(id);
      this.schedule();
      return row;
    }
    if (!ACTIVE_STATUSES.includes(task.status)) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; there is nothing to cancel`,
      );
    }
    const requestedAt = task.cancelRequestedAt ?? new Date();
    const [row] = await this.ctx.db
      .update(tasks)
      .set({ cancelRequestedAt: requestedAt, updatedAt: new Date() })
      .where(eq(tasks.id, id))
      .returning();
    const graceMs = this.ctx.env.STUDIO_CANCEL_GRACE_MS;
    if (!task.cancelRequestedAt) {
      await publish(this.ctx, row, {
        type: "cancel-requested",
        message: `cancel requested; the trainer has ${Math.round(graceMs / 1000)} s to save a checkpoint`,
      });
    }
    const watcher = this.watchers.get(id);
    // Not followed yet (preparing): the launcher carries the cancel out once the launch confirms.
    if (watcher) {
      // Checked every second from now on: the grace period is the watcher's to keep.
      watcher.settled = false;
      await this.ctx.executor.cancel(watcher.handle, { requestedAt, graceMs });
    }
    return row!;
  }

  async pause(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    const watcher = this.watchers.get(id);
    if (task.status !== "training" || !watcher) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a training task can pause`,
      );
    }
    if (!(await this.ctx.executor.signal(watcher.handle, "SIGSTOP"))) {
      throw new TaskActionError("CONFLICT", `task ${id}'s trainer is no longer running`);
    }
    watcher.settled = false;
    const row = await transition(this.ctx.db, id, "paused", {}, ["training"]);
    await publish(this.ctx, row, { type: "paused", message: "paused" });
    return row ?? (await this.mustGet(id));
  }

  async resume(id: string): Promise<TaskRow> {
    const task = await this.mustGet(id);
    const watcher = this.watchers.get(id);
    if (task.status !== "paused" || !watcher) {
      throw new TaskActionError(
        "CONFLICT",
        `task ${id} is ${task.status}; only a paused task can resume`,
      );
    }
    watcher.settled = false;
    await this.ctx.executor.signal(watcher.handle, "SIGCONT");
    const row = await transition(this.ctx.db, id, "training", {}, ["paused"]);
    await publish(this.ctx, row, { type: "resumed", message: "resumed" });
    return row ?? (await this.mustGet(id));
  }

  /** Below the free-space floor on STUDIO_HOME nothing new is queued to run. */
  private async assertDiskSpace() {
    const reason = await noRoomReason(this.ctx.env.STUDIO_HOME, this.ctx.env.STUDIO_MIN_FREE_MB);
    if (reason) throw new TaskActionError("PRECONDITION_FAILED", reason);
  }

  /**
   * A Python trainer is checked before it is queued (interpreter, torch, transformers, peft),
   * so a missing package is a clear refusal now rather than a failed run later. The check is
   * cached while the interpreter and its packages are unchanged.
   */
  private async preflight(task: TaskRow) {
    if (task.trainer !== "hf-peft") return;
    const ready = await this.ctx.hfPeft.check();
    if (!ready.ok) {
      throw new TaskActionError(
        "PRECONDITION_FAILED",
        `the Python trainer cannot run here (${ready.python}): ${ready.problems.join("; ")}; set it up with "${HF_PEFT_SETUP_COMMAND}"`,
      );
    }
  }
}

/** A run the studio queues by itself (the retry policy, or a rollback after divergence). */
export interface AutomaticRun {
  notBefore: Date;
  message: string;
  /** The event it is recorded as (and counted by: runs in a row have limits). */
  event: "auto-retry" | "rolled-back";
  /** Settings changed for the new attempt (a lower learning rate, a smaller batch). */
  hyperparameters?: Partial<Hyperparameters>;
  /** Resume from this checkpoint rather than the last one (one from before a divergence). */
  checkpoint?: { step: number; path: string };
}

/** The row changes an automatic run makes besides queueing: settings, the checkpoint to resume. */
function automaticChanges(task: TaskRow, run: AutomaticRun) {
  return {
    ...(run.hyperparameters
      ? { hyperparameters: { ...task.hyperparameters, ...run.hyperparameters } }
      : {}),
    ...(run.checkpoint
      ? {
          lastCheckpoint: run.checkpoint.path,
          progress: { ...task.progress, lastCheckpoint: run.checkpoint },
        }
      : {}),
  };
}
