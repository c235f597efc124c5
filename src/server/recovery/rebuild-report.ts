import type { TaskStatus } from "../tasks/lifecycle";

/** What a rebuild from the task folders did, folder by folder (returned by `studio.recover`). */
export interface RebuildReport {
  /** Entries of the tasks folder looked at. */
  folders: number;
  /** Folders whose task the database has: never touched. */
  known: number;
  rebuilt: RebuiltTask[];
  /** Folders that gave no task, each with why. */
  failed: { folder: string; why: string }[];
  ms: number;
}

export interface RebuiltTask {
  taskId: string;
  name: string;
  /** The attempt its records speak of; null when none was launched. */
  attempt: number | null;
  /** As inserted, then as reconciliation left it (ended, re-attached, failed with a reason). */
  status: TaskStatus;
  statusReason: string | null;
  notRecovered: string[];
}

/** One line for the studio log: what was rebuilt, what could not be, and how long it took. */
export function summarizeRebuild(report: RebuildReport): string {
  const parts = [`${report.rebuilt.length} rebuilt`];
  if (report.failed.length) parts.push(`${report.failed.length} could not be`);
  parts.push(`${report.known} already in the database`);
  const what =
    report.rebuilt.length || report.failed.length
      ? parts.join(", ")
      : `nothing to rebuild (${report.known} already in the database)`;
  return `${what}; ${report.folders} folders in ${Math.round(report.ms)} ms`;
}

/** Folders that could not be rebuilt, each named in the studio log; `studio recover` lists all. */
const MAX_FAILURES_LOGGED = 10;

/** What the studio log says of a rebuild at boot: the summary, then the first folders that failed. */
export function rebuildLogLines(report: RebuildReport): string[] {
  const failures = failureLines(report);
  const lines = [`rebuild from task folders: ${summarizeRebuild(report)}`];
  lines.push(...failures.slice(0, MAX_FAILURES_LOGGED));
  if (failures.length > MAX_FAILURES_LOGGED) {
    lines.push(
      `… and ${failures.length - MAX_FAILURES_LOGGED} more (\`studio recover\` lists them all)`,
    );
  }
  return lines;
}

/** "could not rebuild tasks/<folder>: <why>", one line per folder. */
export function failureLines(report: RebuildReport): string[] {
  return report.failed.map((f) => `could not rebuild tasks/${f.folder}: ${f.why}`);
}
