import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { syncFolder } from "./durable-folder";

/**
 * Writing a file so that a reader sees the old one or the whole new one, never half, even across
 * a power cut: temp file beside the target, fsync, rename over the target, fsync the folder (which
 * makes the rename itself durable). Every file the studio, the runner and the trainers replace
 * goes through here, so every temp file has the one name `removeStaleTempFiles` knows.
 */

let written = 0;

/**
 * `.<name>.<pid>-<n>.tmp`: hidden, naming the writer, so a dead writer's leftovers can be told,
 * and numbered, so two writes of one file at once (two tasks pinning one dataset) never share one.
 */
function tempPathFor(path: string): string {
  written += 1;
  return join(dirname(path), `.${basename(path)}.${process.pid}-${written}.tmp`);
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, "w", mode);
  try {
    // Loops until every byte is written (one write(2) may take only part of a large buffer).
    writeFileSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    // A full disk fails the write: leave no half-written temp file behind.
    try {
      closeSync(fd);
    } catch {}
    rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = openSync(dirname(path), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** JSON as one line, through `writeFileAtomic`. */
export function writeJsonAtomic(path: string, value: unknown, mode?: number): void {
  writeFileAtomic(path, `${JSON.stringify(value)}\n`, mode);
}

/**
 * `writeFileAtomic` without blocking the event loop, for the studio's large writes (an uploaded
 * dataset) and the trainers' (weights).
 */
export async function writeFileAtomicAsync(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const tmp = tempPathFor(path);
  const file = await open(tmp, "w", mode);
  try {
    await file.writeFile(data);
    await file.sync();
    await file.close();
    await rename(tmp, path);
  } catch (err) {
    await file.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await syncFolder(dirname(path));
}

/**
 * Temp files of this module left in `dir` by writers that are gone (killed mid-write, or stopped
 * by a full disk before they could clean up): `.<name>.<pid>-<n>.tmp` (or, from earlier versions,
 * `.<name>.<pid>.tmp`) whose pid no longer runs.
 * Removes them; returns their names.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = /^\..+\.(\d+)(-\d+)?\.tmp$/.exec(name);
    if (!match || isRunning(Number(match[1]))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
