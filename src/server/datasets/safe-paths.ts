import { constants } from "node:fs";
import { type FileHandle, open, readlink, realpath } from "node:fs/promises";
import { basename, isAbsolute, join, relative } from "node:path";

/** Whether `path` lies strictly inside `root`; both must already be resolved (realpath). */
export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

const DATASET_ID = /^ds-[0-9a-f]{16}$/;

/** Ids name files in the store, so only the shape the store itself makes is accepted. */
export function isStoredDatasetId(id: string): boolean {
  return DATASET_ID.test(id);
}

/** A name to show for an uploaded file: its base name, without control characters, not too long. */
export function displayName(fileName: string): string {
  const base = basename(fileName.replaceAll("\\", "/"));
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, "").trim();
  return (clean || "dataset").slice(0, 200);
}

/** Why a file was not opened: it is missing, or it is not the plain file it should be. */
export class PathRefusal extends Error {
  constructor(
    readonly kind: "missing" | "link" | "not-file",
    message: string,
  ) {
    super(message);
    this.name = "PathRefusal";
  }
}

/** The path of what an open descriptor really is (Linux: /proc/self/fd); null elsewhere. */
async function pathOfDescriptor(fd: number): Promise<string | null> {
  try {
    return await readlink(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/**
 * Opens `path` for reading only when it is a regular file that is exactly at `path`: no
 * symbolic link in any component (the last one is opened with O_NOFOLLOW, and the opened
 * file's real path must be `path` itself), no FIFO or device. `path` must already be
 * resolved (realpath) by the caller up to the folder it trusts.
 */
export async function openExact(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP" || code === "EMLINK") {
      throw new PathRefusal("link", `${basename(path)} is a symbolic link; links are not followed`);
    }
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new PathRefusal("missing", `${basename(path)} does not exist`);
    }
    throw err;
  }
  try {
    const real = (await pathOfDescriptor(handle.fd)) ?? (await realpath(path));
    if (real !== path) {
      throw new PathRefusal(
        "link",
        `${basename(path)} lies behind a symbolic link (it is really ${real}); links are not followed`,
      );
    }
    const info = await handle.stat();
    if (!info.isFile())
      throw new PathRefusal("not-file", `${basename(path)} is not a regular file`);
    return { handle, size: info.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** `openExact` of `relative` under `root` (resolved first: the root itself may be a link). */
export async function openInside(
  root: string,
  relative: string,
): Promise<{ handle: FileHandle; size: number; path: string }> {
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    throw new PathRefusal("missing", `${relative} does not exist`);
  }
  const path = join(realRoot, relative);
  if (!isInside(realRoot, path)) throw new PathRefusal("missing", `${relative} does not exist`);
  return { ...(await openExact(path)), path };
}

/** Refuses a file under `root` that is a link or not a plain file; a missing one is fine. */
export async function assertNoLinkInside(root: string, relative: string): Promise<void> {
  try {
    const { handle } = await openInside(root, relative);
    await handle.close();
  } catch (err) {
    if (err instanceof PathRefusal && err.kind === "missing") return;
    throw err;
  }
}
