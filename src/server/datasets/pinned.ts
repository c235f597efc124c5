import { basename, dirname } from "node:path";
import { DatasetError } from "./dataset-error";
import type { DatasetStore } from "./store";

/**
 * Null when a task's pinned dataset may be trained on now; otherwise the reason it may not
 * (the pinned copy changed, went missing or became a link; a pre-pinning task's file left the
 * allowed folders). For whoever starts a task: the task router before start and retry.
 */
export function verifyPinnedDataset(
  store: DatasetStore,
  datasetPath: string,
): Promise<string | null> {
  return store.verifyPinned(datasetPath);
}

/** `verifyPinnedDataset`, throwing a refusal (PRECONDITION_FAILED) that names the reason. */
export async function assertPinnedDataset(
  store: DatasetStore,
  taskId: string,
  datasetPath: string,
): Promise<void> {
  const reason = await verifyPinnedDataset(store, datasetPath);
  if (reason) {
    throw new DatasetError("PRECONDITION_FAILED", `task ${taskId} cannot start: ${reason}`);
  }
}

/**
 * The content hash a pinned copy is filed under (`…/datasets/pinned/<sha256>/<name>`, see
 * DatasetStore.pinForTask), read from its path alone; null for a path that is not a pinned copy
 * (a task from before pinning). Pure: whether the copy still has that content is
 * `verifyPinnedDataset`'s question.
 */
export function pinnedDatasetSha256(datasetPath: string): string | null {
  const folder = dirname(datasetPath);
  const sha = basename(folder);
  const pinned =
    basename(dirname(folder)) === "pinned" && basename(dirname(dirname(folder))) === "datasets";
  return pinned && /^[0-9a-f]{64}$/.test(sha) ? sha : null;
}
