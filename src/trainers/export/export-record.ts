import { join } from "node:path";
import { z } from "zod";
import { processIdentitySchema } from "../../platform/identity-schema";
import { exportRequestSchema } from "./provenance";

/**
 * `export.json` in the task folder: the one account of the task's latest export, shared by the
 * studio (which writes the request and reads the state) and the exporter (which records that it
 * runs, then how it ended). A studio restart in between loses nothing: the state is here, and a
 * running export is proven by its process's identity, as a trainer's is.
 */

export const EXPORT_RECORD_FILE = "export.json";
/** The exporter's stdout and stderr, and its merge program's. */
export const EXPORT_LOG_FILE = "export.log";
/** Where a finished export lies, whole: it appears only by a rename. */
export const EXPORT_FOLDER = "export";
/** 1: the first format. A reader refuses a newer one by name. */
export const EXPORT_RECORD_VERSION = 1;

export const exportIdSchema = z.string().regex(/^[0-9a-f]{16}$/);

export const exportRecordSchema = z.object({
  version: z.number().int().min(1),
  /** Names this export's staging folder; an exporter whose id is no longer here stands down. */
  id: exportIdSchema,
  state: z.enum(["running", "done", "failed"]),
  request: exportRequestSchema,
  /** hf-peft: the interpreter the studio runs the trainer with, which merges too. */
  python: z.string().nullable(),
  /** The exporter process once it runs (boot id, pid, start time); null until then. */
  process: processIdentitySchema.nullable(),
  /** ISO 8601 */
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  /** done: the export's files with their sizes (provenance.json included). */
  files: z.array(z.object({ name: z.string(), size: z.number().int().min(0) })).nullable(),
  /** failed: why, in words a person can act on. */
  reason: z.string().nullable(),
});
export type ExportRecord = z.infer<typeof exportRecordSchema>;

export function exportRecordPath(taskDir: string): string {
  return join(taskDir, EXPORT_RECORD_FILE);
}

/** A record as read from disk, or why it cannot be used (a newer format is named as such). */
export function parseExportRecord(text: string): ExportRecord {
  const value = JSON.parse(text) as { version?: unknown };
  if (typeof value.version === "number" && value.version > EXPORT_RECORD_VERSION) {
    throw new Error(
      `${EXPORT_RECORD_FILE} is version ${value.version}, from a newer studio; this one reads up to ${EXPORT_RECORD_VERSION}`,
    );
  }
  return exportRecordSchema.parse(value);
}
