import { lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { replaceFolder, syncFile, syncFolder } from "../../platform/durable-folder";
import { hashFile } from "../checkpoints/folder";
import { EXPORT_FOLDER } from "./export-record";
import type { ExportedFile } from "./provenance";

/**
 * The export folder on disk. An export is written into a hidden staging folder of its own
 * (`.export-staging-<id>`), every file flushed, then renamed to `export/`; an earlier export is
 * first moved aside (`.export-replaced-<id>`) and removed after. So `export/` is always one
 * whole export, never part of one: a reader sees the old export or the new one (for the instant
 * between the two renames, none). An exporter stopped halfway leaves only hidden folders, which
 * the next export clears, putting back an earlier export it had moved aside.
 */

const STAGING_PREFIX = ".export-staging-";
const REPLACED_PREFIX = ".export-replaced-";

export function stagingFolder(taskDir: string, id: string): string {
  return join(taskDir, `${STAGING_PREFIX}${id}`);
}

export async function makeStagingFolder(taskDir: string, id: string): Promise<string> {
  const staging = stagingFolder(taskDir, id);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging);
  return staging;
}

/**
 * What stopped exporters left: staging folders are removed; an export moved aside is put back
 * when no export took its place (the stop fell between the two renames), else removed.
 * Returns what was done, for the log.
 */
export async function clearLeftovers(taskDir: string): Promise<string[]> {
  const names = await readdir(taskDir);
  const done: string[] = [];
  let hasExport = names.includes(EXPORT_FOLDER);
  for (const name of names) {
    if (name.startsWith(STAGING_PREFIX)) {
      await rm(join(taskDir, name), { recursive: true, force: true });
      done.push(`removed ${name}`);
    } else if (name.startsWith(REPLACED_PREFIX)) {
      if (!hasExport) {
        await rename(join(taskDir, name), join(taskDir, EXPORT_FOLDER));
        hasExport = true;
        done.push(`put ${name} back as ${EXPORT_FOLDER}`);
      } else {
        await rm(join(taskDir, name), { recursive: true, force: true });
        done.push(`removed ${name}`);
      }
    }
  }
  if (done.length > 0) await syncFolder(taskDir);
  return done;
}

/**
 * Flushes every file of a staged export and the folder itself, and hashes each file. An export
 * holds plain files only (save_pretrained writes no subfolders); anything else is refused.
 */
export async function sealExport(staging: string): Promise<ExportedFile[]> {
  const files: ExportedFile[] = [];
  for (const name of (await readdir(staging)).sort()) {
    const info = await lstat(join(staging, name));
    if (!info.isFile()) throw new Error(`the merge left ${name}, which is not a plain file`);
    await syncFile(join(staging, name));
    files.push({ name, ...(await hashFile(join(staging, name))) });
  }
  await syncFolder(staging);
  return files;
}

/** Makes the staged export the task's export: the earlier one moved aside, then removed. */
export async function swapIntoPlace(taskDir: string, staging: string, id: string): Promise<void> {
  await replaceFolder(
    staging,
    join(taskDir, EXPORT_FOLDER),
    join(taskDir, `${REPLACED_PREFIX}${id}`),
  );
}
