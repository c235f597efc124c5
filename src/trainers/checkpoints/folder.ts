import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, open, readdir, readFile, rename, rm, statfs } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { replaceFolder, syncFile, syncFolder } from "../../platform/durable-folder";
import type { CheckpointSizes } from "./disk-forecast";
import {
  type CheckpointManifest,
  type FileObservation,
  judgeFiles,
  MANIFEST_FILE,
  MANIFEST_VERSION,
  MAX_MANIFEST_BYTES,
  type ManifestFile,
  type ManifestSource,
  readManifest,
} from "./manifest";
import { checkpointStep } from "./resume-choice";

/**
 * Checkpoint folders on disk: listing, hashing, the manifest, durable writes and renames. The
 * decisions (what verifies, what to keep, what fits) are in the pure modules beside this one.
 */

/** Names of the hidden folders a writer or a removal leaves when it is stopped halfway. */
export const STAGING_PREFIX = ".tmp-";
const REPLACED_PREFIX = ".replaced-";
const REMOVING_PREFIX = ".removing-";

export interface CheckpointFolder {
  name: string;
  step: number;
  path: string;
}

/** The checkpoint folders under `checkpointsDir` (none when it does not exist), by step. */
export async function listCheckpoints(
  checkpointsDir: string,
  prefix: string,
): Promise<CheckpointFolder[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(checkpointsDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: CheckpointFolder[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const step = checkpointStep(entry.name, prefix);
    if (step !== null) out.push({ name: entry.name, step, path: join(checkpointsDir, entry.name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

export async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest("hex") };
}

function problemOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

async function readManifestSource(dir: string): Promise<ManifestSource> {
  const path = join(dir, MANIFEST_FILE);
  try {
    const info = await lstat(path);
    if (!info.isFile()) return { kind: "unreadable", problem: "not a regular file" };
    if (info.size > MAX_MANIFEST_BYTES) {
      return { kind: "unreadable", problem: `${info.size} bytes, more than a manifest holds` };
    }
    return { kind: "text", text: await readFile(path, "utf8") };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    return { kind: "unreadable", problem: problemOf(err) };
  }
}

async function observe(dir: string, file: ManifestFile): Promise<FileObservation> {
  const path = join(dir, file.path);
  try {
    const info = await lstat(path);
    if (!info.isFile()) return { kind: "unreadable", problem: "not a regular file" };
    // A file of the wrong size is not worth reading.
    if (info.size !== file.size) return { kind: "present", size: info.size, sha256: null };
    const hashed = await hashFile(path);
    return { kind: "present", size: hashed.size, sha256: hashed.sha256 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    return { kind: "unreadable", problem: problemOf(err) };
  }
}

export type Verification =
  | { kind: "verified"; manifest: CheckpointManifest }
  /** No manifest: written by a release from before manifests, accepted as it always was. */
  | { kind: "legacy" }
  | { kind: "failed"; reason: string };

/** Reads the manifest of `dir` and hashes every file it lists. `expectedStep`: from the name. */
export async function verifyCheckpoint(
  dir: string,
  expectedStep: number | null,
): Promise<Verification> {
  try {
    const info = await lstat(dir);
    if (!info.isDirectory()) return { kind: "failed", reason: "not a folder" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { kind: "failed", reason: code === "ENOENT" ? "does not exist" : problemOf(err) };
  }
  const reading = readManifest(await readManifestSource(dir), expectedStep);
  if (reading.kind === "legacy") return { kind: "legacy" };
  if (reading.kind === "invalid") return { kind: "failed", reason: reading.reason };
  const observed = new Map<string, FileObservation>();
  for (const file of reading.manifest.files) observed.set(file.path, await observe(dir, file));
  const verdict = judgeFiles(reading.manifest, observed);
  return verdict.ok
    ? { kind: "verified", manifest: reading.manifest }
    : { kind: "failed", reason: verdict.reason };
}

/** The manifest of `dir` if it has a valid one (no hashing): for eval losses and sizes. */
export async function peekManifest(dir: string): Promise<CheckpointManifest | null> {
  const reading = readManifest(await readManifestSource(dir), null);
  return reading.kind === "manifest" ? reading.manifest : null;
}

/** Every regular file under `dir`, as "/"-separated relative paths, the manifest left out. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await filesUnder(dir, relative)));
    else if (entry.isFile()) {
      if (relative !== MANIFEST_FILE) out.push(relative);
    } else throw new Error(`${join(dir, relative)} is not a regular file or folder`);
  }
  return out.sort();
}

/** The sizes of a checkpoint without a manifest, from its files. */
export async function folderSizes(
  dir: string,
  finalFiles: readonly string[],
): Promise<CheckpointSizes> {
  const sizes = { checkpointBytes: 0, checkpointFiles: 0, finalBytes: 0, finalFiles: 0 };
  for (const file of await filesUnder(dir)) {
    const { size } = await lstat(join(dir, file));
    sizes.checkpointBytes += size;
    sizes.checkpointFiles += 1;
    if (finalFiles.includes(file)) {
      sizes.finalBytes += size;
      sizes.finalFiles += 1;
    }
  }
  return sizes;
}

/** Written and flushed to the device before it returns. */
export async function writeFileDurably(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a file someone else wrote, and hashes it. */
async function syncAndHash(path: string): Promise<{ size: number; sha256: string }> {
  await syncFile(path);
  return hashFile(path);
}

/**
 * Writes `manifest.json` into a staged checkpoint and flushes the folder. `files`: the entries
 * of files the caller wrote itself and hashed from memory (already flushed); without them, every
 * file in the folder is flushed and hashed from disk.
 */
export async function sealCheckpoint(
  dir: string,
  meta: { step: number; evalLoss: number | null; trainer: string },
  files?: ManifestFile[],
): Promise<CheckpointManifest> {
  const entries: ManifestFile[] = [];
  if (files) entries.push(...files);
  else {
    for (const path of await filesUnder(dir)) {
      entries.push({ path, ...(await syncAndHash(join(dir, path))) });
      if (path.includes("/")) await syncFolder(join(dir, dirname(path)));
    }
  }
  const manifest: CheckpointManifest = {
    version: MANIFEST_VERSION,
    step: meta.step,
    evalLoss: meta.evalLoss,
    trainer: meta.trainer,
    createdAt: new Date().toISOString(),
    files: entries,
  };
  await writeFileDurably(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  await syncFolder(dir);
  return manifest;
}

/**
 * Renames a staged folder to `target` and flushes the parent. A folder already there (left by
 * an earlier attempt that reached the same step) is moved aside first and removed after, so at
 * no moment is there a half-removed folder under the checkpoint's name.
 */
export async function renameIntoPlace(staged: string, target: string): Promise<void> {
  const aside = join(dirname(target), `${REPLACED_PREFIX}${basename(target)}-${process.pid}`);
  await replaceFolder(staged, target, aside);
}

/** Removes a checkpoint: renamed away first, so a stop halfway leaves no broken checkpoint. */
export async function removeCheckpoint(path: string): Promise<void> {
  const aside = join(dirname(path), `${REMOVING_PREFIX}${basename(path)}-${process.pid}`);
  await rename(path, aside);
  await rm(aside, { recursive: true, force: true });
}

/** Staged, replaced and half-removed folders left by a writer that was stopped. */
export async function removeLeftovers(checkpointsDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(checkpointsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const leftovers = names.filter((n) =>
    [STAGING_PREFIX, REPLACED_PREFIX, REMOVING_PREFIX].some((p) => n.startsWith(p)),
  );
  for (const name of leftovers)
    await rm(join(checkpointsDir, name), { recursive: true, force: true });
  return leftovers;
}

/** Free bytes for this user on the file system that holds `path`, and its block size. */
export async function freeSpace(path: string): Promise<{ freeBytes: number; blockBytes: number }> {
  const stats = await statfs(path);
  return { freeBytes: Number(stats.bavail) * Number(stats.bsize), blockBytes: Number(stats.bsize) };
}
