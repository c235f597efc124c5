import { and, eq, inArray } from "drizzle-orm";
import { removeStaleTempFiles } from "../../runner/atomic-json";
import { type AttemptRow, attempts, type TaskRow, tasks } from "../db/schema";
import { describeDiskSpace, diskSpace } from "../disk-space";
import { ACTIVE_STATUSES, OPEN_STATUSES } from "../tasks/lifecycle";
import { getTask, transition } from "../tasks/repository";
import type { AttemptWatcher, AttemptWatchers } from "./attempt-watcher";
import { monitorFor } from "./attempt-watcher";
import { note, publish, type SupervisorContext, taskFolder } from "./context";
import { type AttemptHandle, describeHandle, parseAttemptHandle } from "./executor";
import { hasCheckpoint, observeAttempt } from "./observe";
import {
  type AttemptRef,
  failAttempt,
  failWithoutAttempt,
  finalizeAttempt,
  interruptAttempt,
} from "./outcomes";
import {
  type ReconcilableStatus,
  type ReconcileDecision,
  type ReconcileInput,
  reconcile,
} from "./reconcile";

/** What the reconciler needs from the rest of the supervisor. */
export interface ReconcilerDeps {
  watchers: AttemptWatchers;
  /** Runs the scheduler (a slot may have freed). */
  schedule: () => void;
  /** Queues the task again from its last checkpoint (auto-resume after a reboot). */
  resumeFromCheckpoint: (taskId: string) => Promise<unknown>;
  /** Stores the handle of an attempt whose launch was confirmed; returns the updated row. */
  recordHandle: (attempt: AttemptRow, handle: AttemptHandle) => Promise<AttemptRow>;
  launchTimeoutMs: number;
}

/**
 * Carries out reconciliation decisions (./reconcile) for boot and for live following alike, the
 * way containerd's shim manager has one dead-shim path: whatever notices that an attempt ended,
 * at boot or while watching, ends it through the same code. Every fault found in one task (an
 * unreadable record, a handle that no longer parses, an executor that throws) ends or leaves
 * that task alone and never stops the others.
 */
export class Reconciler {
  constructor(
    private readonly ctx: SupervisorContext,
    private readonly deps: ReconcilerDeps,
  ) {}

  /** Boot: every open task once. Returns a one-line summary for the studio log. */
  async reconcileOpenTasks(): Promise<string> {
    const open = await this.ctx.db
      .select()
      .from(tasks)
      .where(inArray(tasks.status, [...OPEN_STATUSES]));
    const counts: Record<string, number> = {};
    await Promise.all(
      open.map(async (task) => {
        let action: string;
        try {
          action = await this.reconcileAtBoot(task);
        } catch (err) {
          // The database failing mid-way: this task is looked at again at the next start.
          this.ctx.log(`boot reconciliation of task ${task.id} failed: ${err}`);
          action = "error";
        }
        counts[action] = (counts[action] ?? 0) + 1;
      }),
    );
    const parts = Object.entries(counts).map(([action, n]) => `${n} ${action}`);
    return parts.length ? parts.join(", ") : "nothing to do";
  }

  private async latestAttempt(task: TaskRow): Promise<AttemptRow | null> {
    const [attempt] = await this.ctx.db
      .select()
      .from(attempts)
      .where(and(eq(attempts.taskId, task.id), eq(attempts.number, task.currentAttempt)));
    return attempt ?? null;
  }

  private async reconcileAtBoot(task: TaskRow): Promise<string> {
    const dir = taskFolder(this.ctx, task.id);
    const removed = removeStaleTempFiles(dir);
    if (removed.length) this.ctx.log(`task ${task.id}: removed stale ${removed.join(", ")}`);
    const attempt = task.status === "queued" ? null : await this.latestAttempt(task);
    const stored = attempt?.handle ? parseAttemptHandle(attempt.handle) : null;
    const handle = stored?.handle ?? null;
    const observed =
      attempt && task.status !== "queued"
        ? await observeAttempt(this.ctx.executor, dir, {
            number: attempt.number,
            handle,
          })
        : { exit: null, recoveredHandle: null, processes: null };
    const decision = reconcile(
      this.input(task, attempt, handle, stored?.problem ?? null, observed),
    );

    switch (decision.action) {
      case "requeue":
        break;
      case "reattach": {
        const a = attempt!;
        const live = decision.storeHandle
          ? await this.deps.recordHandle(a, decision.storeHandle)
          : a;
        const liveHandle = decision.storeHandle ?? handle!;
        const status = decision.paused ? "paused" : "training";
        const row =
          task.status === status
            ? task
            : ((await transition(this.ctx.db, task.id, status, {}, [task.status])) ?? task);
        const summary = describeHandle(liveHandle);
        await publish(this.ctx, row, {
          type: "recovered",
          message: `the studio restarted; training went on (${summary.label})`,
          attempt: a.number,
          data: summary.facts,
        });
        const watcher = this.deps.watchers.follow(row, live, liveHandle);
        if (stored?.problem) {
          await this.warn(
            watcher,
            `the stored handle of attempt ${a.number} was unreadable (${stored.problem}); the runner's runner.json proved the processes and replaced it`,
          );
        }
        if (decision.warning) await this.warn(watcher, decision.warning);
        if (decision.continueCancel) await this.carryOnCancel(row, liveHandle);
        break;
      }
      case "await-runner":
      case "undecided": {
        // Followed quietly: the watcher's next checks decide once the executor can tell.
        const liveHandle = handle ?? observed.recoveredHandle;
        if (liveHandle) this.deps.watchers.follow(task, attempt!, liveHandle);
        break;
      }
      case "wait":
        // A launch may still confirm: decide again once its time is up, never launching meanwhile.
        setTimeout(
          () => void this.reconcileAgain(task.id),
          Math.max(0, decision.recheckAt - Date.now()) + 100,
        ).unref();
        break;
      default: {
        // The attempt has ended: what it wrote while no studio watched is read first.
        if (attempt) await monitorFor(this.ctx, task, attempt).drain();
        await this.end(task, attempt, decision, handle ?? observed.recoveredHandle, observed);
      }
    }
    return decision.action;
  }

  private async reconcileAgain(taskId: string) {
    try {
      const task = await getTask(this.ctx.db, taskId);
      if (!task || !ACTIVE_STATUSES.includes(task.status)) return;
      if (this.deps.watchers.get(taskId)) return;
      await this.reconcileAtBoot(task);
      this.deps.schedule();
    } catch (err) {
      this.ctx.log(`reconciliation of task ${taskId} failed: ${err}`);
      setTimeout(() => void this.reconcileAgain(taskId), 1_000).unref();
    }
  }

  /** Live: one followed attempt, on every check. */
  async reconcileLive(watcher: AttemptWatcher): Promise<void> {
    const task = await getTask(this.ctx.db, watcher.ref.taskId);
    if (
      !task ||
      !ACTIVE_STATUSES.includes(task.status) ||
      task.currentAttempt !== watcher.ref.number
    ) {
      // Ended or superseded by someone else's write: nothing of ours to follow.
      await this.deps.watchers.release(watcher, false);
      return;
    }
    const observed = await observeAttempt(this.ctx.executor, watcher.dir, {
      number: watcher.ref.number,
      handle: watcher.handle,
    });
    const decision = reconcile(
      this.input(task, { intentAt: new Date(0) }, watcher.handle, null, observed),
    );
    switch (decision.action) {
      case "reattach":
        if (decision.warning) await this.warn(watcher, decision.warning);
        await this.escalateCancel(task, watcher);
        return;
      case "await-runner":
        watcher.checkSoon();
        return;
      case "undecided":
        return;
      case "requeue":
      case "wait":
      case "launch-failed":
        // Cannot follow from a handle; logged should the table ever say so.
        this.ctx.log(`task ${task.id}: unexpected live decision ${decision.action}`);
        return;
      default:
        await this.deps.watchers.release(watcher, true);
        try {
          await this.end(
            task,
            { id: watcher.ref.rowId, number: watcher.ref.number },
            decision,
            watcher.handle,
            observed,
          );
        } catch (err) {
          // The database did not take the outcome: decide again (as at boot) until it does, so
          // the task never stays "training" with nothing following it.
          this.ctx.log(`task ${task.id}: recording the end failed (${err}); trying again`);
          setTimeout(() => void this.reconcileAgain(task.id), 1_000).unref();
        }
        this.deps.schedule();
    }
  }

  private input(
    task: TaskRow,
    attempt: Pick<AttemptRow, "intentAt"> | null,
    handle: AttemptHandle | null,
    handleProblem: string | null,
    observed: ReconcileInput["observed"],
  ): ReconcileInput {
    return {
      status: task.status as ReconcilableStatus,
      attempt: attempt && {
        handle,
        handleProblem,
        cancelRequested: task.cancelRequestedAt !== null,
        intentAt: attempt.intentAt.getTime(),
      },
      observed,
      hasCheckpoint: hasCheckpoint(taskFolder(this.ctx, task.id)),
      autoResume: this.ctx.env.STUDIO_AUTO_RESUME,
      now: Date.now(),
      launchTimeoutMs: this.deps.launchTimeoutMs,
    };
  }

  /** Writes the end of an attempt the decision calls for. */
  private async end(
    task: TaskRow,
    attempt: Pick<AttemptRow, "id" | "number"> | null,
    decision: ReconcileDecision,
    handle: AttemptHandle | null,
    observed: ReconcileInput["observed"],
  ) {
    const ref: AttemptRef | null = attempt && {
      taskId: task.id,
      rowId: attempt.id,
      number: attempt.number,
    };
    switch (decision.action) {
      case "finalize":
        await finalizeAttempt(this.ctx, ref!, {
          status: decision.status,
          reason:
            decision.status === "failed"
              ? decision.reason + (await this.trainerSaid(task.id)) + (await this.fullDiskNote())
              : decision.reason,
          exitCode: decision.exitCode,
          signal: decision.signal,
          error: observed.exit?.error,
          endedAt: observed.exit ? new Date(observed.exit.endedAt) : undefined,
        });
        break;
      case "interrupted":
        await interruptAttempt(this.ctx, ref!, decision);
        if (decision.autoResume) {
          try {
            await this.deps.resumeFromCheckpoint(task.id);
          } catch (err) {
            // Refused (no disk space, the dataset changed): the task stays interrupted, saying why.
            await note(this.ctx, task.id, {
              type: "warning",
              message: `could not resume automatically: ${err instanceof Error ? err.message : err}`,
            });
          }
        }
        break;
      case "failed-unexpectedly":
        if (decision.killTrainerGroup && handle) {
          await this.ctx.executor.signal(handle, "SIGKILL").catch(() => false);
        }
        await failAttempt(
          this.ctx,
          ref!,
          decision.reason,
          decision.seen + (await this.fullDiskNote()),
        );
        break;
      case "launch-failed":
        if (ref) await failAttempt(this.ctx, ref, "could not launch", decision.reason, "failed");
        else await failWithoutAttempt(this.ctx, task, decision.reason);
        break;
      default:
        break;
    }
  }

  /**
   * ": <reason>" when the trainer said why it failed (a "failed" event of this attempt, read by
   * the monitor's drain before this runs), else "".
   */
  private async trainerSaid(taskId: string): Promise<string> {
    const progress = (await getTask(this.ctx.db, taskId))?.progress as { failure?: unknown };
    return typeof progress?.failure === "string" ? `: ${progress.failure}` : "";
  }

  /**
   * "; disk full: 0 MB free on …" when STUDIO_HOME is below its floor, else "": an attempt that
   * failed on a full disk most likely failed of it. Looked at only for failures.
   */
  private async fullDiskNote(): Promise<string> {
    const home = this.ctx.env.STUDIO_HOME;
    const space = await diskSpace(home, this.ctx.env.STUDIO_MIN_FREE_MB).catch(() => null);
    return space?.verdict === "full" ? `; disk full: ${describeDiskSpace(space)}` : "";
  }

  private async warn(watcher: AttemptWatcher, warning: string) {
    if (!watcher.firstWarning(warning)) return;
    this.ctx.log(`task ${watcher.ref.taskId}: ${warning}`);
    await note(this.ctx, watcher.ref.taskId, {
      type: "warning",
      message: warning,
      attempt: watcher.ref.number,
    });
  }

  /** A cancel asked before the restart: ask again (the runner ignores a request it already acts on). */
  private async carryOnCancel(task: TaskRow, handle: AttemptHandle) {
    await this.ctx.executor.cancel(handle, {
      requestedAt: task.cancelRequestedAt ?? new Date(),
      graceMs: this.ctx.env.STUDIO_CANCEL_GRACE_MS,
    });
  }

  /**
   * The studio's backstop for a cancel's grace period: SIGKILL once it is over. A runner that
   * keeps the grace itself gets a few seconds more, so this only acts when it could not.
   */
  private async escalateCancel(task: TaskRow, watcher: AttemptWatcher) {
    if (!task.cancelRequestedAt) return;
    const margin = this.ctx.executor.graceKeptByRunner(watcher.handle) ? 5_000 : 0;
    const due = task.cancelRequestedAt.getTime() + this.ctx.env.STUDIO_CANCEL_GRACE_MS + margin;
    if (Date.now() <= due) return;
    if (await this.ctx.executor.signal(watcher.handle, "SIGKILL")) {
      this.ctx.log(`task ${task.id}: grace period over, SIGKILL to its process group`);
    }
  }
}
