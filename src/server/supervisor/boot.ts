import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { and, desc, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { type AttemptRow, attempts, type TaskRow, tasks } from "../db/schema";
import type { Env } from "../env";
import { taskDir } from "../home";
import { observeAttempt, parseAttemptHandle } from "./executor";
import { type ReconcilableStatus, reconcile } from "./reconcile";
import type { Supervisor } from "./supervisor";

function hasCheckpoint(dir: string): boolean {
  const checkpoints = join(dir, "checkpoints");
  return existsSync(checkpoints) && readdirSync(checkpoints).some((n) => !n.startsWith("."));
}

/**
 * Boot reconciliation: before the studio serves, every task that was not finished when the
 * last studio stopped is looked at once and put right (see ./reconcile for the decisions).
 * Returns a one-line summary for the studio log.
 */
export async function reconcileAtBoot(supervisor: Supervisor, db: Db, env: Env): Promise<string> {
  const open = await db
    .select()
    .from(tasks)
    .where(inArray(tasks.status, ["queued", "preparing", "training", "paused"]));
  const latest = open.length
    ? await db
        .select()
        .from(attempts)
        .where(
          inArray(
            attempts.taskId,
            open.map((t) => t.id),
          ),
        )
        .orderBy(desc(attempts.number))
    : [];
  const counts: Record<string, number> = {};
  await Promise.all(
    open.map(async (task) => {
      const attempt = latest.find((a) => a.taskId === task.id && a.number === task.currentAttempt);
      const action = await reconcileTask(supervisor, db, env, task, attempt ?? null);
      counts[action] = (counts[action] ?? 0) + 1;
    }),
  );
  const parts = Object.entries(counts).map(([action, n]) => `${n} ${action}`);
  return parts.length ? parts.join(", ") : "nothing to do";
}

async function reconcileAgain(supervisor: Supervisor, db: Db, env: Env, taskId: string) {
  const [task] = await db.select().from(tasks).where(eq(tasks.id, taskId));
  if (!task || !["preparing", "training", "paused"].includes(task.status)) return;
  const [attempt] = await db
    .select()
    .from(attempts)
    .where(and(eq(attempts.taskId, taskId), eq(attempts.number, task.currentAttempt)));
  await reconcileTask(supervisor, db, env, task, attempt ?? null);
}

async function reconcileTask(
  supervisor: Supervisor,
  db: Db,
  env: Env,
  task: TaskRow,
  attempt: AttemptRow | null,
): Promise<string> {
  const dir = taskDir(env.STUDIO_HOME, task.id);
  const handle = attempt?.handle ? parseAttemptHandle(attempt.handle) : null;
  const observed =
    attempt && task.status !== "queued"
      ? await observeAttempt(supervisor.executor, dir, { number: attempt.number, handle })
      : { exit: null, recoveredHandle: null, processes: null };
  const decision = reconcile({
    status: task.status as ReconcilableStatus,
    attempt: attempt && {
      handle,
      cancelRequested: task.cancelRequestedAt !== null,
      intentAt: attempt.intentAt.getTime(),
    },
    observed,
    hasCheckpoint: hasCheckpoint(dir),
    autoResume: env.STUDIO_AUTO_RESUME,
    now: Date.now(),
    launchTimeoutMs: supervisor.launchTimeoutMs,
  });

  // What the trainer wrote while no studio watched is read before its outcome is written down.
  const ended = ["finalize", "interrupted", "failed-unexpectedly"].includes(decision.action);
  if (ended && attempt) await supervisor.catchUp(task, attempt);

  switch (decision.action) {
    case "requeue":
      break;
    case "finalize":
      await supervisor.finalize(task, attempt!.id, attempt!.number, {
        status: decision.status,
        reason: decision.reason,
        exitCode: decision.exitCode,
        signal: decision.signal,
        error: observed.exit?.error,
        endedAt: observed.exit ? new Date(observed.exit.endedAt) : undefined,
      });
      break;
    case "interrupted":
      await supervisor.interrupt(task, attempt!, decision);
      break;
    case "reattach": {
      const live = decision.storeHandle
        ? await supervisor.recordHandle(attempt!, decision.storeHandle)
        : attempt!;
      await supervisor.reattach(task, live, parseAttemptHandle(live.handle), decision);
      break;
    }
    case "failed-unexpectedly":
      if (decision.killTrainerGroup && (handle ?? observed.recoveredHandle)) {
        await supervisor.executor.signal((handle ?? observed.recoveredHandle)!, "SIGKILL");
      }
      await supervisor.failUnexpectedly(task.id, attempt!.id, attempt!.number, decision.seen);
      break;
    case "wait":
      // A launch may still confirm: decide again once its time is up, never launching meanwhile.
      setTimeout(
        () => void reconcileAgain(supervisor, db, env, task.id).catch(() => {}),
        Math.max(0, decision.recheckAt - Date.now()) + 100,
      ).unref();
      break;
    case "launch-failed":
      if (attempt) {
        await supervisor.failUnexpectedly(task.id, attempt.id, attempt.number, decision.reason);
      } else {
        await db
          .update(tasks)
          .set({ status: "failed", statusReason: decision.reason, finishedAt: new Date() })
          .where(and(eq(tasks.id, task.id), eq(tasks.status, task.status)));
      }
      break;
  }
  return decision.action;
}
