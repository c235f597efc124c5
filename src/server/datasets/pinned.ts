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
