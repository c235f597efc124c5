import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asc, eq, sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR } from "../../src/platform/package-root";
import { openDatabase } from "../../src/server/db/client";
import { taskMetrics } from "../../src/server/db/schema";
import { createTestDatabase, testDatabaseKinds } from "../helpers/databases";

/** The migrations folder as it was before 0001: only 0000_init. */
function initialMigrations(): string {
  const dir = mkdtempSync(join(tmpdir(), "studio-migrations-"));
  mkdirSync(join(dir, "meta"));
  cpSync(join(MIGRATIONS_DIR, "0000_init.sql"), join(dir, "0000_init.sql"));
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, "meta/_journal.json"), "utf8"));
  journal.entries = journal.entries.filter((e: { idx: number }) => e.idx === 0);
  writeFileSync(join(dir, "meta/_journal.json"), JSON.stringify(journal));
  return dir;
}

describe.each(testDatabaseKinds())("migration 0001 on an existing database (%s)", (kind) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("keeps one row per (task, attempt, step, kind) of duplicated metrics, then refuses duplicates", async () => {
    const before = initialMigrations();
    cleanups.push(() => rmSync(before, { recursive: true, force: true }));
    // PGlite: a folder of our own; PostgreSQL: a fresh database from the shared helper.
    const pgliteDir = mkdtempSync(join(tmpdir(), "studio-pglite-"));
    cleanups.push(() => rmSync(pgliteDir, { recursive: true, force: true }));
    const server = kind === "postgres" ? await createTestDatabase(kind) : null;
    if (server) cleanups.push(() => server.drop());
    const open = (migrationsFolder?: string) =>
      openDatabase({ databaseUrl: server?.url, pgliteDir, migrationsFolder });

    const old = await open(before);
    await old.db.execute(sql`insert into tasks (id, name, model, trainer, dataset_path, dataset_format, hyperparameters, status)
      values ('t1', 'n', 'm', 'builtin', '/d', 'text', '{}'::jsonb, 'completed')`);
    // Step 5 stored three times (train), its eval twice, step 10 once; attempt 2 repeats step 5.
    await old.db.execute(sql`insert into task_metrics (task_id, attempt, step, loss, learning_rate, eval_loss) values
      ('t1', 1, 5, 2.0, 0.1, null), ('t1', 1, 5, 2.0, 0.1, null), ('t1', 1, 5, 1.9, 0.1, null),
      ('t1', 1, 5, null, null, 3.0), ('t1', 1, 5, null, null, 3.0),
      ('t1', 1, 10, 1.5, null, null), ('t1', 2, 5, 2.5, null, null)`);
    await old.close();

    const current = await open();
    cleanups.push(() => current.close());
    const rows = await current.db
      .select()
      .from(taskMetrics)
      .where(eq(taskMetrics.taskId, "t1"))
      .orderBy(asc(taskMetrics.attempt), asc(taskMetrics.step), asc(taskMetrics.kind));
    expect(rows.map((r) => [r.attempt, r.step, r.kind, r.loss, r.evalLoss])).toEqual([
      [1, 5, "eval", null, 3],
      [1, 5, "train", 1.9, null],
      [1, 10, "train", 1.5, null],
      [2, 5, "train", 2.5, null],
    ]);
    await expect(
      current.db.insert(taskMetrics).values({ taskId: "t1", attempt: 1, step: 10, kind: "train" }),
    ).rejects.toThrow();
  });
});
