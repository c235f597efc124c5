import { statfs } from "node:fs/promises";

/**
 * The free-space guard on STUDIO_HOME (task folders, checkpoints, the embedded database). A
 * trainer that fills the disk dies of it and takes the database's writes with it, so the studio
 * refuses to start more work below a floor, and says so, rather than finding out mid-run.
 */

export interface DiskSpace {
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

export async function diskSpace(path: string, floorMb: number): Promise<DiskSpace> {
  const st = await statfs(path);
  const freeBytes = Number(st.bavail) * Number(st.bsize);
  const floorBytes = floorMb * MiB;
  return { freeBytes, floorBytes, verdict: diskVerdict(freeBytes, floorBytes) };
}

/** "12 MB free on /home/x/.finetune-studio; the studio keeps at least 100 MB (STUDIO_MIN_FREE_MB)" */
export function describeDiskSpace(path: string, space: DiskSpace): string {
  return `${Math.floor(space.freeBytes / MiB)} MB free on ${path}; the studio keeps at least ${Math.round(space.floorBytes / MiB)} MB (STUDIO_MIN_FREE_MB)`;
}

/** Null when there is room for new work; otherwise why not, for a refusal. */
export async function noRoomReason(path: string, floorMb: number): Promise<string | null> {
  const space = await diskSpace(path, floorMb);
  return space.verdict === "full"
    ? `not enough disk space: ${describeDiskSpace(path, space)}; free some space and try again`
    : null;
}
