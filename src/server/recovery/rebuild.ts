import { readdir, realpath } from "node:fs/promises";
import { hostname } from "node:os";
import { inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { attempts, type TaskRow, taskEvents, tasks } from "../db/schema";
import { studioPaths } from "../home";
import { type FolderVerdict, inventoryFolder, type RebuildPlan } from "./folder-inventory";
import { readTaskFolder } from "./read-folder";
import type { RebuildReport } from "./rebuild-report";

/** Folders read at once; their inserts then go one task (one transaction) at a time. */
const READ_AT_ONCE = 32;
/** Ids per "which of these does the database have" query. */
const IDS_PER_QUERY = 1000;

/**
 * Gives the database back the tasks it lost, from their folders (the ground truth it was built
 * from): every folder under STUDIO_HOME/tasks whose task the database does not have is read
 * (./read-folder), judged (./folder-inventory, pure) and inserted, one transaction per task.
 * A task the database has is never read or touched, so running it again inserts nothing; a
 * task inserted meanwhile by someone else wins (the insert does nothing). Rebuilt tasks are
 * left open for reconciliation to judge, as at any boot. Faults stay in their folder: each one
 * that gives no task is in `failed` with why.
 */
export async function rebuildFromFolders(
  db: Db,
  home: string,
  studio: { host?: string; now?: () => Date } = {},
): Promise<RebuildReport> {
  const started = performance.now();
  const report: RebuildReport = { folders: 0, known: 0, rebuilt: [], failed: [], ms: 0 };
  let root: string;
  let names: string[];
  try {
    root = await realpath(studioPaths(home).tasks);
    // Hidden entries are temp files and the like, never a task.
    names = (await readdir(root)).filter((n) => !n.startsWith(".")).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    names = [];
    root = "";
  }
  report.folders = names.length;

  const known = new Set<string>();
  for (let i = 0; i < names.length; i += IDS_PER_QUERY) {
    const batch = names.slice(i, i + IDS_PER_QUERY);
    const rows = await db.select({ id: tasks.id }).from(tasks).where(inArray(tasks.id, batch));
    for (const row of rows) known.add(row.id);
  }
  report.known = known.size;
  const lost = names.filter((n) => !known.has(n));

  const host = studio.host ?? hostname();
  for (let i = 0; i < lost.length; i += READ_AT_ONCE) {
    const verdicts = await Promise.all(
      lost.slice(i, i + READ_AT_ONCE).map(async (name): Promise<FolderVerdict> => {
        const contents = await readTaskFolder(root, name);
        if ("problem" in contents) {
          return { kind: "cannot", folder: contents.folder, why: contents.problem };
        }
        return inventoryFolder(contents, { now: studio.now?.() ?? new Date(), host });
      }),
    );
    for (const verdict of verdicts) {
      if (verdict.kind === "cannot") {
        report.failed.push({ folder: verdict.folder, why: verdict.why });
        continue;
      }
      const { plan } = verdict;
      try {
        const row = await insertPlan(db, plan);
        if (!row) {
          report.known++;
          continue;
        }
        report.rebuilt.push({
          taskId: row.id,
          name: row.name,
          attempt: plan.attempt?.number ?? null,
          status: row.status,
          statusReason: row.statusReason,
          notRecovered: plan.event.data.notRecovered,
        });
      } catch (err) {
        report.failed.push({
          folder: plan.taskId,
          why: `the database did not take it (${err instanceof Error ? err.message : err})`,
        });
      }
    }
  }
  report.ms = performance.now() - started;
  return report;
}

/** The task, its attempt and its "rebuilt" event, all or nothing; null when the task exists. */
async function insertPlan(db: Db, plan: RebuildPlan): Promise<TaskRow | null> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(tasks)
      .values(plan.task)
      .onConflictDoNothing({ target: tasks.id })
      .returning();
    if (!row) return null;
    if (plan.attempt) await tx.insert(attempts).values(plan.attempt);
    await tx.insert(taskEvents).values({
      taskId: row.id,
      type: plan.event.type,
      message: plan.event.message,
      attempt: plan.event.attempt,
      data: plan.event.data,
    });
    return row;
  });
}
