import { readdir, realpath } from "node:fs/promises";
import { hostname } from "node:os";
import { inArray } from "drizzle-orm";
import type { Db } from "../db/client";
import { attempts, type TaskRow, taskEvents, tasks } from "../db/schema";
import { studioPaths } from "../home";
import { type FolderVerdict, inventoryFolder, type RebuildPlan } from "./folder-inventory";
import { readTaskFolder } from "./read-folder";
import type { RebuildReport } from "./rebuild-report";

/** Folders read at once; their tasks are then inserted in one transaction (see insertPlans). */
const READ_AT_ONCE = 100;
/** How much of a database error a report line carries. */
const MAX_ERROR_TEXT = 300;
/** Ids per "which of these does the database have" query. */
const IDS_PER_QUERY = 1000;

/**
 * Gives the database back the tasks it lost, from their folders (the ground truth it was built
 * from): every folder under STUDIO_HOME/tasks whose task the database does not have is read
 * (./read-folder), judged (./folder-inventory, pure) and inserted, each task with its attempt
 * and event in one transaction (a hundred tasks to a transaction, each alone should the batch fail).
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
  const tasksRoot = studioPaths(home).tasks;
  let root: string;
  let names: string[];
  try {
    root = await realpath(tasksRoot);
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
        return inventoryFolder(contents, { now: studio.now?.() ?? new Date(), host, tasksRoot });
      }),
    );
    const plans: RebuildPlan[] = [];
    for (const verdict of verdicts) {
      if (verdict.kind === "cannot")
        report.failed.push({ folder: verdict.folder, why: verdict.why });
      else plans.push(verdict.plan);
    }
    const inserted = await insertPlans(db, plans);
    for (const plan of plans) {
      const outcome = inserted.get(plan.taskId);
      if (outcome === undefined) {
        report.known++;
      } else if (outcome instanceof Error) {
        report.failed.push({
          folder: plan.taskId,
          why: `the database did not take it (${outcome.message.slice(0, MAX_ERROR_TEXT)})`,
        });
      } else {
        report.rebuilt.push({
          taskId: outcome.id,
          name: outcome.name,
          attempt: plan.attempt?.number ?? null,
          status: outcome.status,
          statusReason: outcome.statusReason,
          notRecovered: plan.event.data.notRecovered,
        });
      }
    }
  }
  report.ms = performance.now() - started;
  return report;
}

/**
 * Inserts the plans' tasks, each with its attempt and "rebuilt" event, in one transaction (a
 * task's rows are never apart). A batch the database refuses is tried again task by task, so a
 * task it cannot take fails alone. Returns, by task id, the inserted row or why it failed; a
 * task the database already has (inserted meanwhile by someone else) is left out.
 */
async function insertPlans(db: Db, plans: RebuildPlan[]): Promise<Map<string, TaskRow | Error>> {
  const out = new Map<string, TaskRow | Error>();
  if (plans.length === 0) return out;
  try {
    for (const row of await insertAll(db, plans)) out.set(row.id, row);
    return out;
  } catch (err) {
    if (plans.length === 1) {
      // The database's own words, not the query and its parameters that a wrapper adds.
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
      out.set(plans[0]!.taskId, cause instanceof Error ? cause : new Error(String(cause)));
      return out;
    }
  }
  for (const plan of plans) {
    for (const [id, outcome] of await insertPlans(db, [plan])) out.set(id, outcome);
  }
  return out;
}

async function insertAll(db: Db, plans: RebuildPlan[]): Promise<TaskRow[]> {
  return db.transaction(async (tx) => {
    const rows = await tx
      .insert(tasks)
      .values(plans.map((p) => p.task))
      .onConflictDoNothing({ target: tasks.id })
      .returning();
    const inserted = new Set(rows.map((r) => r.id));
    const mine = plans.filter((p) => inserted.has(p.taskId));
    const attemptRows = mine.flatMap((p) => (p.attempt ? [p.attempt] : []));
    if (attemptRows.length) await tx.insert(attempts).values(attemptRows);
    if (mine.length) {
      await tx.insert(taskEvents).values(
        mine.map((p) => ({
          taskId: p.taskId,
          type: p.event.type,
          message: p.event.message,
          attempt: p.event.attempt,
          data: p.event.data,
        })),
      );
    }
    return rows;
  });
}
