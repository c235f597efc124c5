import { type FSWatcher, watch } from "node:fs";
import type { FolderHint } from "./executor";

/**
 * Hints of changes in a task folder, from the kernel: the folder is watched, not its files, so a
 * file replaced by rename (exit.json) keeps being seen. Only hints: a folder that cannot be
 * watched (or whose watch fails later) is still polled, and on a network file system writes
 * from other machines raise no event at all.
 */
export function watchTaskFolder(taskDir: string, onHint: FolderHint): () => void {
  let watcher: FSWatcher;
  try {
    watcher = watch(taskDir, (kind, name) =>
      onHint(name === null ? null : String(name), kind === "rename" ? "rename" : "change"),
    );
  } catch {
    return () => {};
  }
  watcher.on("error", () => watcher.close());
  return () => watcher.close();
}
