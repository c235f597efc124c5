import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { and, eq, inArray, isNull } from "drizzle-orm";
import { type TaskRow, tasks } from "../db/schema";
import { attemptHasEvent, automaticRunsInARow } from "../tasks/repository";
import { STOP_REQUEST_VERSION, type StopRequest } from "../tasks/stop-request";
import type { AttemptWatcher } from "./attempt-watcher";
import { note, publish, type SupervisorContext, taskFolder } from "./context";
import { divergenceVerdict, rollbackTarget } from "./divergence-watch";
import type { ProgressState } from "./progress-state";

/** Spikes are not judged before this many finite loss reports: the loss is still settling. */
const WARMUP_REPORTS = 8;

/**
 * The divergence watchdog acting on a training attempt (the arithmetic is ./divergence-watch).
 * By STUDIO_DIVERGENCE_ACTION it warns, stops the trainer, or stops it and runs the task again
 * from the newest checkpoint from before the trouble at a lower learning rate. The decision is
 * stored with the cancel request (`stopRequest`) before the trainer is signalled, so the
 * attempt ends as failed for that reason, and the rollback happens, whichever studio sees the
 * end: this one, or the next after a restart.
 */
export class DivergenceGuard {
  constructor(private readonly ctx: SupervisorContext) {}

  /** On every live check of an attempt. */
  async check(task: TaskRow, watcher: AttemptWatcher): Promise<void> {
    if (task.status !== "training" || task.cancelRequestedAt || watcher.divergenceReported) return;
    const { env } = this.ctx;
    const watch = (task.progress as Partial<ProgressState>).lossWatch;
    if (!watch) return;
    const verdict = divergenceVerdict(watch, {
      spikeFactor: env.STUDIO_DIVERGENCE_SPIKE_FACTOR,
      patience: env.STUDIO_DIVERGENCE_PATIENCE,
      warmup: WARMUP_REPORTS,
    });
    if (!verdict.diverged) return;
    watcher.divergenceReported = true;
    // A studio that restarted sees the same evidence again: one word per attempt.
    if (await attemptHasEvent(this.ctx.db, task.id, watcher.ref.number, "diverged")) return;
    const data = {
      step: verdict.step,
      lastGoodStep: verdict.lastGoodStep,
      action: env.STUDIO_DIVERGENCE_ACTION,
    };

    if (env.STUDIO_DIVERGENCE_ACTION === "warn") {
      await note(this.ctx, task.id, {
        type: "diverged",
        message: `diverged: ${verdict.evidence}; the watchdog only warns (STUDIO_DIVERGENCE_ACTION=warn)`,
        attempt: watcher.ref.number,
        data,
      });
      return;
    }

    const rollback = await this.rollbackPlan(task, watch, verdict);
    const reason = `diverged: ${verdict.evidence}; stopped by the divergence watchdog${rollback.message}`;
    const stop: StopRequest = {
      version: STOP_REQUEST_VERSION,
      cause: "diverged",
      reason,
      rollback: rollback.to,
    };
    const requestedAt = new Date();
    const [row] = await this.ctx.db
      .update(tasks)
      .set({ cancelRequestedAt: requestedAt, stopRequest: stop, updatedAt: requestedAt })
      .where(
        and(
          eq(tasks.id, task.id),
          inArray(tasks.status, ["training", "paused"]),
          isNull(tasks.cancelRequestedAt),
        ),
      )
      .returning();
    // A person cancelled meanwhile: theirs stands.
    if (!row) return;
    await publish(this.ctx, row, {
      type: "diverged",
      message: reason,
      attempt: watcher.ref.number,
      data: { ...data, rollback: rollback.to },
    });
    await this.ctx.executor.cancel(watcher.handle, {
      requestedAt,
      graceMs: this.ctx.env.STUDIO_CANCEL_GRACE_MS,
    });
  }

  /** Where a rollback would go, and the words for it (or for why there is none). */
  private async rollbackPlan(
    task: TaskRow,
    watch: NonNullable<ProgressState["lossWatch"]>,
    verdict: Extract<ReturnType<typeof divergenceVerdict>, { diverged: true }>,
  ): Promise<{ to: StopRequest["rollback"]; message: string }> {
    const { env } = this.ctx;
    if (env.STUDIO_DIVERGENCE_ACTION !== "rollback") return { to: null, message: "" };
    const done = await automaticRunsInARow(this.ctx.db, task.id, "rolled-back");
    if (done >= env.STUDIO_DIVERGENCE_ROLLBACKS) {
      return {
        to: null,
        message: `; not rolled back: it diverged after ${done} rollback${done === 1 ? "" : "s"} in a row (the limit is ${env.STUDIO_DIVERGENCE_ROLLBACKS})`,
      };
    }
    const folder = taskFolder(this.ctx, task);
    const target = rollbackTarget(watch, verdict);
    if (!target || !existsSync(isAbsolute(target.path) ? target.path : join(folder, target.path))) {
      return { to: null, message: "; not rolled back: no checkpoint from before the divergence" };
    }
    const learningRate = Number(
      (task.hyperparameters.learningRate * env.STUDIO_DIVERGENCE_LR_FACTOR).toPrecision(6),
    );
    return {
      to: { step: target.step, path: target.path, learningRate },
      message: `; rolling back to ${target.path} (step ${target.step}) at learning rate ${learningRate} (was ${task.hyperparameters.learningRate}; rollback ${done + 1} of ${env.STUDIO_DIVERGENCE_ROLLBACKS})`,
    };
  }
}
