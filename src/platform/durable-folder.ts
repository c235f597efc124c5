import { open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";

/** Flushes a file another process wrote (a trainer's weights) to the device. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a folder's entries (a created or renamed name) to the device. */
export async function syncFolder(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Renames a staged folder to `target` and flushes the parent. A folder already there is moved
 * to `aside` first and removed after, so at no moment is there a half-removed folder under the
 * target's name (a writer stopped halfway leaves `aside` for its owner's leftover cleanup).
 */
export async function replaceFolder(staged: string, target: string, aside: string): Promise<void> {
  let replaced = false;
  try {
    await rename(target, aside);
    replaced = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await rename(staged, target);
  await syncFolder(dirname(target));
  if (replaced) await rm(aside, { recursive: true, force: true });
}
