import { freeBytes } from "../disk-space";
import { databaseProblemOf } from "./health";

const MiB = 1024 * 1024;

/**
 * Why the database could not be opened, for the one line `studio start` prints: a full disk
 * under the embedded database is named with the free space seen, whatever PGlite called it.
 */
export async function openFailureReason(err: unknown, embeddedDir: string | null): Promise<string> {
  const message = err instanceof Error ? err.message : String(err);
  if (embeddedDir === null || databaseProblemOf(err)?.kind !== "disk-full") return message;
  const free = await freeBytes(embeddedDir).catch(() => null);
  return free === null ? "disk full" : `disk full (${Math.floor(free / MiB)} MB free)`;
}
