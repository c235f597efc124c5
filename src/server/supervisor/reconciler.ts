import { join } from "node:path";
import { and, eq, inArray } from "drizzle-orm";
import { removeStaleTempFiles } from "../../platform/atomic-write";
import { eachLimited } from "../../platform/each-limited";
import { type AttemptRow, attempts, type TaskRow, tasks } from "../db/schema";
import { describeDiskSpace, diskSpace } from "../disk-space";
import { readLinesBefore } from "../logs/log-cursor";
import { ACTIVE_STATUSES, OPEN_STATUSES } from "../tasks/lifecycle";
import { automaticRunsInARow, getTask, transition } from "../tasks/repository";
import { readStopRequest, type StopRequest } from "../tasks/stop-request";
import type { AttemptWatcher, AttemptWatchers } from "./attempt-watcher";
import { monitorFor } from "./attempt-watcher";
import type { AutomaticRun } from "./commands";
import { note, publish, type SupervisorContext, taskFolder } from "./context";
import { DivergenceGuard } from "./divergence-guard";
import {
  type AttemptHandle,
  describeHandle,
  type ExitRecord,
  parseAttemptHandle,
} from "./executor";
import { classifyFailure } from "./failure-cause";
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
  TERMINATED_UNEXPECTEDLY,
} from "./reconcile";
import { type RetryCause, retryDecision } from "./retry-policy";
import { slowWorkDue } from "./stall-watch";

/** How much of the end of training.log a failure is judged from. */
const FAILURE_LOG_LINES = 200;
/** Open tasks boot reconciles at once (see reconcileOpenTasks). */
const BOOT_PARALLEL_TASKS = 4;

/** What the reconciler needs from the rest of the supervisor. */
export interface ReconcilerDeps {
  watchers: AttemptWatchers;
  /** Runs the scheduler (a slot may have freed). */
  schedule: () => void;
  /** Queues the task again from its last checkpoint (auto-resume after a reboot). */
  resumeFromCheckpoint: (taskId: string) => Promise<unknown>;
  /**
   * Queues a failed task again by the retry policy (to start no sooner than `notBefore`), or
   * for a rollback after divergence.
   */
  retryAutomatically: (
    taskId: string,
    fromCheckpoint: boolean,
    automatic: AutomaticRun,
  ) => Promise<unknown>;
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
  /** Why trainers found running went on without this supervisor (for the "recovered" events). */
  private resumeReason = "the studio restarted";
  /** Set when this supervisor stops: its pending retries end (the next term reconciles afresh). */
  private stopped = false;

  private readonly divergence: DivergenceGuard;

  constructor(
    private readonly ctx: SupervisorContext,
    private readonly deps: ReconcilerDeps,
  ) {
    this.divergence = new DivergenceGuard(ctx);
  }

  /**
   * Boot (and every new term of supervision): every open task once, or only those of `only`
   * (tasks rebuilt from their folders while the studio runs). `resumeReason` says why running
   * trainers were not followed until now. Returns a one-line summary for the studio log.
   */
  async reconcileOpenTasks(resumeReason: string, only?: readonly string[]): Promise<string> {
    if (only?.length === 0) return "nothing to do";
    // A term's reason stays for its later retries; a rebuild's is for its own tasks only.
    if (!only) this.resumeReason = resumeReason;
    const open = await this.ctx.db
      .select()
      .from(tasks)
      .where(
        and(
          inArray(tasks.status, [...OPEN_STATUSES]),
          only ? inArray(tasks.id, [...only]) : undefined,
        ),
      );
    const counts: Record<string, number> = {};
    // The studio answers meanwhile: a few tasks at a time keep its requests from queueing
    // behind every task's database calls.
    await eachLimited(open, BOOT_PARALLEL_TASKS, async (task) => {
      let action: string;
      try {
        action = await this.reconcileAtBoot(task, resumeReason);
      } catch (err) {
        // The database failing mid-way: this task is looked at again in a second.
        this.ctx.log(`boot reconciliation of task ${task.id} failed: ${err}; trying again`);
        setTimeout(() => void this.reconcileAgain(task.id), 1_000).unref();
        action = "error";
      }
      counts[action] = (counts[action] ?? 0) + 1;
    });
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

  private async reconcileAtBoot(task: TaskRow, resumeReason = this.resumeReason): Promise<string> {
    const dir = taskFolder(this.ctx, task);
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
          message: `${resumeReason}; training went on (${summary.label})`,
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

  stop() {
    this.stopped = true;
  }

  private async reconcileAgain(taskId: string) {
    if (this.stopped) return;
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
        await this.watchForStall(task, watcher);
        await this.divergence.check(task, watcher);
        // Nothing to look at again soon: the poll may look at the processes alone.
        watcher.settled =
          !decision.warning && task.status === "training" && !task.cancelRequestedAt;
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
        try {
          await this.deps.watchers.release(watcher, true);
          await this.end(
            task,
            { id: watcher.ref.rowId, number: watcher.ref.number },
            decision,
            watcher.handle,
            observed,
          );
        } catch (err) {
          // The database did not take the last lines or the outcome: decide again (as at boot,
          // from the stored cursors) until it does, so the task never stays "training" with
          // nothing following it, and never ends without its last lines.
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
        stoppedFor: readStopRequest(task.stopRequest)?.reason ?? null,
        intentAt: attempt.intentAt.getTime(),
      },
      observed,
      hasCheckpoint: hasCheckpoint(taskFolder(this.ctx, task)),
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
      case "finalize": {
        // Stopped by a watchdog: its reason is the cause. A trainer that failed on its own: name
        // the cause from what it left behind.
        const stop = decision.status === "failed" ? readStopRequest(task.stopRequest) : null;
        const named = stop
          ? { cause: stop.cause, reason: decision.reason }
          : decision.status === "failed" && !observed.exit?.error
            ? await this.failureCause(task, decision, observed.exit)
            : null;
        const ended = await finalizeAttempt(this.ctx, ref!, {
          status: decision.status,
          reason: named?.reason ?? decision.reason,
          cause: named?.cause,
          exitCode: decision.exitCode,
          signal: decision.signal,
          error: observed.exit?.error,
          endedAt: observed.exit ? new Date(observed.exit.endedAt) : undefined,
        });
        if (stop) await this.rollBack(ended, stop);
        else if (named) await this.applyRetryPolicy(ended, named.cause);
        break;
      }
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
      case "failed-unexpectedly": {
        if (decision.killTrainerGroup && handle) {
          await this.ctx.executor.signal(handle, "SIGKILL").catch(() => false);
        }
        const failed = await failAttempt(
          this.ctx,
          ref!,
          decision.reason,
          decision.seen + (await this.fullDiskNote()),
        );
        if (decision.reason === TERMINATED_UNEXPECTEDLY) {
          await this.applyRetryPolicy(failed, "runner-lost");
        }
        break;
      }
      case "launch-failed":
        if (ref) await failAttempt(this.ctx, ref, "could not launch", decision.reason, "failed");
        else await failWithoutAttempt(this.ctx, task, decision.reason);
        break;
      default:
        break;
    }
  }

  /**
   * "; disk full: 0 MB free on …" when STUDIO_HOME is below its floor, else "": an attempt that
   * failed on a full disk most likely failed of it. Looked at only for failures.
   */
  private async fullDiskNote(): Promise<string> {
    const full = await this.diskFull();
    return full ? `; disk full: ${full}` : "";
  }

  private async diskFull(): Promise<string | null> {
    const home = this.ctx.env.STUDIO_HOME;
    const space = await diskSpace(home, this.ctx.env.STUDIO_MIN_FREE_MB).catch(() => null);
    return space?.verdict === "full" ? describeDiskSpace(space) : null;
  }

  /** The evidence of a failed attempt (steps reached, the log's end, free space), judged. */
  private async failureCause(
    task: TaskRow,
    decision: { exitCode: number | null; signal: string | null },
    exit: ExitRecord | null,
  ) {
    // The row as the drain left it: the steps the attempt reached.
    const fresh = (await getTask(this.ctx.db, task.id)) ?? task;
    const progress = fresh.progress as { step?: number; failure?: unknown };
    const tail = await readLinesBefore(
      join(taskFolder(this.ctx, task), "training.log"),
      Number.MAX_SAFE_INTEGER,
      FAILURE_LOG_LINES,
    ).catch(() => ({ lines: [] }));
    return classifyFailure({
      exitCode: decision.exitCode,
      signal: decision.signal,
      steps: progress.step ?? 0,
      logTail: tail.lines.map((l) => l.text),
      diskFull: await this.diskFull(),
      diskFreeAtExit: exit?.diskFreeBytes ?? null,
      memory: exit?.memory ?? null,
      stoppedBy: exit?.stoppedBy ?? null,
      trainerSaid: typeof progress.failure === "string" ? progress.failure : null,
    });
  }

  /**
   * The stall watchdog: a warning when the steps stop for longer than the policy allows, and a
   * note when they move again. It warns and does not act: a long evaluation is not a hang.
   */
  private async watchForStall(task: TaskRow, watcher: AttemptWatcher) {
    const now = Date.now();
    if (task.status !== "training" || task.cancelRequestedAt) {
      watcher.steps.reset();
      return;
    }
    const step = (task.progress as { step?: number | null }).step ?? null;
    watcher.steps.observe(step, now);
    if (watcher.stall && step !== watcher.stall.step) {
      const stalledS = Math.round((now - watcher.stall.since) / 1000);
      watcher.stall = null;
      await note(this.ctx, task.id, {
        type: "stall-cleared",
        message: `steps moved again (step ${step}) after ${stalledS} s without one`,
        attempt: watcher.ref.number,
      });
      return;
    }
    const hp = task.hyperparameters;
    const totalSteps = (task.progress as { totalSteps?: number | null }).totalSteps ?? null;
    const due =
      step === null ? null : slowWorkDue(step, { ...hp, evaluates: hp.evalSplit > 0 }, totalSteps);
    const verdict = watcher.steps.verdict(
      now,
      {
        factor: this.ctx.env.STUDIO_STALL_FACTOR,
        minMs: this.ctx.env.STUDIO_STALL_MIN_SECONDS * 1000,
        slowMs: this.ctx.env.STUDIO_STALL_SLOW_SECONDS * 1000,
      },
      due,
    );
    if (!verdict.stalled || watcher.stall) return;
    watcher.stall = { step: verdict.step, since: now - verdict.sinceMs };
    const s = (ms: number) => `${Math.round(ms / 100) / 10} s`;
    await note(this.ctx, task.id, {
      type: "stalled",
      message: `no new step for ${s(verdict.sinceMs)} after step ${verdict.step} (median step time ${s(verdict.medianStepMs)}; the watchdog allows ${s(verdict.budgetMs)}${verdict.due ? `, with ${verdict.due} due` : ""}): the trainer may be hung`,
      attempt: watcher.ref.number,
      data: {
        step: verdict.step,
        sinceMs: verdict.sinceMs,
        medianStepMs: verdict.medianStepMs,
        budgetMs: verdict.budgetMs,
        due: verdict.due,
      },
    });
  }

  /** After a failure: queue the task again when the retry policy says so, or say why not. */
  /** `task`: the row the failure wrote (undefined when another writer ended it first). */
  private async applyRetryPolicy(task: TaskRow | undefined, cause: RetryCause) {
    if (this.ctx.env.STUDIO_RETRY_LIMIT === 0) return;
    if (task?.status !== "failed") return;
    const taskId = task.id;
    const decision = retryDecision(
      {
        cause,
        retriesSoFar: await automaticRunsInARow(this.ctx.db, taskId, "auto-retry"),
        hasCheckpoint: task.lastCheckpoint !== null,
        batchSize: task.hyperparameters.batchSize,
      },
      {
        limit: this.ctx.env.STUDIO_RETRY_LIMIT,
        backoffSeconds: this.ctx.env.STUDIO_RETRY_BACKOFF_SECONDS,
        oomSmallerBatch: this.ctx.env.STUDIO_RETRY_OOM_SMALLER_BATCH,
      },
    );
    if (!decision.retry) {
      if (decision.message) {
        await note(this.ctx, taskId, { type: "retry-policy", message: decision.message });
      }
      return;
    }
    try {
      await this.deps.retryAutomatically(taskId, decision.fromCheckpoint, {
        notBefore: new Date(Date.now() + decision.delayMs),
        message: decision.message,
        event: "auto-retry",
        ...(decision.batchSize ? { hyperparameters: { batchSize: decision.batchSize } } : {}),
      });
    } catch (err) {
      // Refused (the trainer is no longer set up, the dataset changed): it stays failed, saying why.
      await note(this.ctx, taskId, {
        type: "retry-policy",
        message: `could not retry automatically: ${err instanceof Error ? err.message : err}`,
      });
    }
  }

  /** After the divergence watchdog stopped a trainer: run again from the checkpoint it chose. */
  private async rollBack(task: TaskRow | undefined, stop: StopRequest) {
    if (task?.status !== "failed" || !stop.rollback) return;
    const { step, path, learningRate } = stop.rollback;
    try {
      await this.deps.retryAutomatically(task.id, true, {
        notBefore: new Date(),
        message: `rolled back to ${path} (step ${step}) at learning rate ${learningRate} after the loss diverged`,
        event: "rolled-back",
        hyperparameters: { learningRate },
        checkpoint: { step, path },
      });
    } catch (err) {
      await note(this.ctx, task.id, {
        type: "retry-policy",
        message: `could not roll back: ${err instanceof Error ? err.message : err}`,
      });
    }
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
