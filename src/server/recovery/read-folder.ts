import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { TRAINING_LOG_FILE } from "../../runner/records";
import { PROGRESS_FILE } from "../../trainers/protocol";
import { openExact, PathRefusal } from "../datasets/safe-paths";
import {
  type FileFound,
  FOLDER_FILES,
  type FolderContents,
  type FolderFile,
} from "./folder-inventory";

/**
 * Bounds on what is read of each file. The runner's records are small (src/runner/records.ts);
 * task.json and config.json hold a command trainer's argv (up to 256 arguments of 4 KiB).
 */
const MAX_BYTES: Record<FolderFile, number> = {
  task: 2 * 1024 * 1024,
  config: 2 * 1024 * 1024,
  runner: 64 * 1024,
  exit: 64 * 1024,
  cancel: 64 * 1024,
  slurmJob: 64 * 1024,
};

/**
 * Reads what a rebuild needs of one entry of the tasks folder (`tasksRoot`, already resolved
 * with realpath). Never follows a link: a task folder or file that is one is refused by name,
 * as are FIFOs, devices and files far larger than any record. Never throws for the folder's
 * contents; what could not be read is said in the result.
 */
export async function readTaskFolder(
  tasksRoot: string,
  name: string,
): Promise<FolderContents | { folder: string; problem: string }> {
  const dir = join(tasksRoot, name);
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(dir);
  } catch (err) {
    return { folder: name, problem: `cannot be looked at (${codeOf(err)})` };
  }
  if (info.isSymbolicLink()) {
    return { folder: name, problem: "is a symbolic link; links are not followed" };
  }
  if (!info.isDirectory()) return { folder: name, problem: "not a folder" };

  const times = [info.birthtimeMs, info.mtimeMs];
  const files = {} as Record<FolderFile, FileFound>;
  for (const key of Object.keys(FOLDER_FILES) as FolderFile[]) {
    files[key] = await readFile(join(dir, FOLDER_FILES[key]), MAX_BYTES[key]);
    const found = files[key];
    if (found.state === "read") times.push(found.mtimeMs);
  }
  const log = await lstat(join(dir, TRAINING_LOG_FILE)).catch(() => null);
  const progress = await lstat(join(dir, PROGRESS_FILE)).catch(() => null);
  for (const st of [log, progress]) if (st) times.push(st.birthtimeMs, st.mtimeMs);
  // A file system that keeps no creation time reports 0.
  const known = times.filter((t) => t > 0);
  return {
    name,
    files,
    hasLog: log?.isFile() ?? false,
    hasProgress: progress?.isFile() ?? false,
    oldestTimeMs: known.length ? Math.min(...known) : null,
  };
}

async function readFile(path: string, maxBytes: number): Promise<FileFound> {
  let opened: Awaited<ReturnType<typeof openExact>>;
  try {
    opened = await openExact(path);
  } catch (err) {
    if (err instanceof PathRefusal) {
      if (err.kind === "missing") return { state: "missing" };
      return {
        state: "unreadable",
        problem:
          err.kind === "link"
            ? "a symbolic link (or behind one); links are not followed"
            : "not a regular file",
      };
    }
    return { state: "unreadable", problem: `cannot be opened (${codeOf(err)})` };
  }
  const { handle, size } = opened;
  try {
    if (size > maxBytes) {
      return { state: "unreadable", problem: `${size} bytes, more than any such file holds` };
    }
    const mtimeMs = (await handle.stat()).mtimeMs;
    return { state: "read", text: (await handle.readFile()).toString("utf8"), mtimeMs };
  } catch (err) {
    return { state: "unreadable", problem: `cannot be read (${codeOf(err)})` };
  } finally {
    await handle.close();
  }
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message ?? String(err);
}
