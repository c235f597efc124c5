import type { Liveness } from "../../platform/identity";
import type { ExportRecord } from "./export-record";
import type { ExportSource } from "./provenance";

/**
 * What a person is told about a task's export, from its record and what is seen now (pure).
 * A record saying "running" is believed only while its exporter is alive (identity, as for a
 * trainer): an exporter that was killed leaves "running" behind, and that is a failure.
 */

/** How long a requested export may take to show its process before it counts as not started. */
export const EXPORT_START_GRACE_MS = 30_000;

export interface ExportedFileInfo {
  name: string;
  size: number;
}

interface Known {
  id: string;
  source: ExportSource;
  startedAt: string;
}

export type ExportStatus =
  | { state: "none" }
  | (Known & { state: "running" })
  | (Known & { state: "done"; finishedAt: string; files: ExportedFileInfo[] })
  | (Partial<Known> & { state: "failed"; finishedAt: string | null; reason: string });

export interface ExportObservation {
  /** The record, null when there is none, or why it cannot be read. */
  record: ExportRecord | null | { problem: string };
  /** Of the record's process, when it names one: "alive", or what it is instead. */
  liveness: Liveness | null;
  now: Date;
  /** done: the recorded files that are not in the export folder now. */
  missingFiles: string[];
  /** The export folder, for messages. */
  folder: string;
  /** The last line of export.log worth quoting, if any. */
  lastLogLine: string | null;
}

export function judgeExport(seen: ExportObservation): ExportStatus {
  const { record } = seen;
  if (record === null) return { state: "none" };
  if ("problem" in record) {
    return { state: "failed", finishedAt: null, reason: `the export record ${record.problem}` };
  }
  const known: Known = {
    id: record.id,
    source: record.request.source,
    startedAt: record.startedAt,
  };
  const log = seen.lastLogLine ? ` (export.log: ${seen.lastLogLine})` : "";
  switch (record.state) {
    case "running": {
      if (record.process === null) {
        const waited = seen.now.getTime() - Date.parse(record.startedAt);
        if (waited < EXPORT_START_GRACE_MS) return { ...known, state: "running" };
        return {
          ...known,
          state: "failed",
          finishedAt: null,
          reason: `the export process did not start within ${EXPORT_START_GRACE_MS / 1000} s${log}`,
        };
      }
      if (seen.liveness === "alive") return { ...known, state: "running" };
      return {
        ...known,
        state: "failed",
        finishedAt: null,
        reason: `the export process (pid ${record.process.pid}) ended before it finished${seen.liveness === "other-boot" ? " (the machine restarted)" : ""}; the task is unchanged${log}`,
      };
    }
    case "done":
      if (seen.missingFiles.length > 0) {
        return {
          ...known,
          state: "failed",
          finishedAt: record.finishedAt,
          reason: `${seen.missingFiles.join(", ")} of the export ${seen.missingFiles.length === 1 ? "is" : "are"} no longer in ${seen.folder}; export again`,
        };
      }
      return {
        ...known,
        state: "done",
        finishedAt: record.finishedAt ?? record.startedAt,
        files: record.files ?? [],
      };
    case "failed":
      return {
        ...known,
        state: "failed",
        finishedAt: record.finishedAt,
        reason: record.reason ?? "the export failed for a reason it did not record",
      };
  }
}
