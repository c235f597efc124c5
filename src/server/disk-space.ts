import { statfs } from "node:fs/promises";
import { join } from "node:path";

/**
 * The free-space guard on STUDIO_HOME (task folders, checkpoints, the embedded database). A
 * trainer that fills the disk dies of it and takes the database's writes with it, so the studio
 * refuses to start more work below a floor, and says so, rather than finding out mid-run.
 */

export interface DiskSpace {
  /** The folder the figure is for: STUDIO_HOME, or its tasks folder when that is fuller. */
  path: string;
  /** Bytes an unprivileged writer may still use. */
  freeBytes: number;
  floorBytes: number;
  /** "ok"; "low": under four floors, warn; "full": under the floor, refuse new work. */
  verdict: "ok" | "low" | "full";
}

const MiB = 1024 * 1024;

/** The verdict for `freeBytes` against the floor (pure). */
export function diskVerdict(freeBytes: number, floorBytes: number): DiskSpace["verdict"] {
  if (freeBytes < floorBytes) return "full";
  if (freeBytes < 4 * floorBytes) return "low";
  return "ok";
}

/** Bytes an unprivileged writer may still use on the file system holding `path`. */
export async function freeBytes(path: string): Promise<number> {
  const st = await statfs(path);
  return Number(st.bavail) * Number(st.bsize);
}

/**
 * Free space where the studio writes: STUDIO_HOME (the embedded database, datasets) and its tasks
 * folder (logs, checkpoints), which an operator may mount elsewhere. The fuller one counts.
 */
export async function diskSpace(home: string, floorMb: number): Promise<DiskSpace> {
  const floorBytes = floorMb * MiB;
  let worst: DiskSpace | null = null;
  for (const path of [home, join(home, "tasks")]) {
    const free = await freeBytes(path).catch(() => null);
    if (free === null) continue;
    if (worst && worst.freeBytes <= free) continue;
    worst = { path, freeBytes: free, floorBytes, verdict: diskVerdict(free, floorBytes) };
  }
  if (!worst) throw new Error(`cannot read the free space of ${home}`);
  return worst;
}

/** "12 MB free on /home/x/.finetune-studio; the studio keeps at least 100 MB (STUDIO_MIN_FREE_MB)" */
export function describeDiskSpace(space: DiskSpace): string {
  return `${Math.floor(space.freeBytes / MiB)} MB free on ${space.path}; the studio keeps at least ${Math.round(space.floorBytes / MiB)} MB (STUDIO_MIN_FREE_MB)`;
}

/** Null when there is room for new work; otherwise why not, for a refusal. */
export async function noRoomReason(home: string, floorMb: number): Promise<string | null> {
  const space = await diskSpace(home, floorMb);
  return space.verdict === "full"
    ? `not enough disk space: ${describeDiskSpace(space)}; free some space and try again`
    : null;
}
