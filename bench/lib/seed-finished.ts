import type { Db } from "../../src/server/db/client";
import { attempts, taskEvents, tasks } from "../../src/server/db/schema";
import { newTaskId } from "../../src/server/tasks/repository";
import { hyperparametersSchema } from "../../src/trainers/protocol";

/** Rows per INSERT: large enough to be quick, small enough to stay under PostgreSQL's parameter limit. */
const BATCH = 500;

/**
 * Writes `count` finished tasks straight into the database, as a long-used studio would have them:
 * each completed, with one ended attempt and its created/started/completed events. Only while no
 * studio has the database open (PGlite allows one user).
 */
export async function seedFinishedTasks(db: Db, count: number): Promise<void> {
  const hyperparameters = hyperparametersSchema.parse({});
  const day = 24 * 3600 * 1000;
  for (let first = 0; first < count; first += BATCH) {
    const ids = Array.from({ length: Math.min(BATCH, count - first) }, () => newTaskId());
    const rows = ids.map((id, i) => {
      const startedAt = new Date(Date.now() - day - (first + i) * 60_000);
      return { id, startedAt, endedAt: new Date(startedAt.getTime() + 30 * 60_000) };
    });
    await db.insert(tasks).values(
      rows.map((r) => ({
        id: r.id,
        name: `finished-${r.id}`,
        model: "fixture",
        trainer: "command" as const,
        datasetPath: "/nonexistent/sample.jsonl",
        datasetFormat: "alpaca" as const,
        hyperparameters,
        command: ["true"],
        status: "completed" as const,
        statusReason: "trainer exited with code 0",
        progress: { step: 300, totalSteps: 300, epoch: 3, loss: 0.2 },
        currentAttempt: 1,
        createdAt: r.startedAt,
        updatedAt: r.endedAt,
        finishedAt: r.endedAt,
      })),
    );
    await db.insert(attempts).values(
      rows.map((r) => ({
        taskId: r.id,
        number: 1,
        host: "bench",
        exitCode: 0,
        logCursor: { inode: "1", offset: 12_345 },
        progressCursor: { inode: "2", offset: 678 },
        intentAt: r.startedAt,
        startedAt: r.startedAt,
        endedAt: r.endedAt,
      })),
    );
    await db.insert(taskEvents).values(
      rows.flatMap((r) => [
        { taskId: r.id, type: "created", message: "task created", at: r.startedAt },
        { taskId: r.id, attempt: 1, type: "started", message: "training", at: r.startedAt },
        { taskId: r.id, attempt: 1, type: "completed", message: "exit code 0", at: r.endedAt },
      ]),
    );
  }
}
