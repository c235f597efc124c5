import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { listCheckpoints as listCheckpointFolders } from "../checkpoints/folder";

/**
 * Which of a task's trained weights a playground or an evaluation reads: the final adapter in
 * the task folder (null), or a checkpoint folder under checkpoints/. Checked before any model is
 * loaded, so a wrong name is answered in words, at once, for that request only.
 */

export class ModelSourceError extends Error {}

export interface ModelSource {
  /** "." or "checkpoints/<name>", relative to the task folder. */
  path: string;
  /** The checkpoint's step, when its name ends in one. */
  step: number | null;
}

/** The file that proves trained weights are in a folder, by what the task trained. */
export function trainedWeightsFile(mode: "lora" | "pretrain"): string {
  return mode === "pretrain" ? "model.safetensors" : "adapter_model.safetensors";
}

/** The source a checkpoint name (step-20, checkpoints/step-20) or null names; the shape only. */
export function parseModelSource(checkpoint: string | null): ModelSource {
  if (checkpoint === null) return { path: ".", step: null };
  const path = checkpoint.includes("/") ? checkpoint : `checkpoints/${checkpoint}`;
  const shape = /^checkpoints\/([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127})$/.exec(path);
  if (!shape) {
    throw new ModelSourceError(
      `${checkpoint} is not a checkpoint folder name (e.g. checkpoints/step-20)`,
    );
  }
  const step = /-(\d+)$/.exec(shape[1]!)?.[1];
  return { path, step: step === undefined ? null : Number(step) };
}

/** The source, checked on disk: the folder and its trained weights are there. */
export async function resolveModelSource(
  taskDir: string,
  checkpoint: string | null,
  mode: "lora" | "pretrain",
): Promise<ModelSource> {
  const source = parseModelSource(checkpoint);
  const weights = trainedWeightsFile(mode);
  if (source.path !== ".") {
    const info = await lstat(join(taskDir, source.path)).catch(() => null);
    if (!info?.isDirectory()) {
      const known = await listCheckpoints(taskDir);
      throw new ModelSourceError(
        `the task has no checkpoint ${source.path}${info ? " (it is not a plain folder)" : ""}; it has ${known.length ? known.join(", ") : "none"}`,
      );
    }
  }
  const file = await lstat(join(taskDir, source.path, weights)).catch(() => null);
  if (!file?.isFile()) {
    throw new ModelSourceError(
      source.path === "."
        ? `the task has no trained ${mode === "pretrain" ? "model" : "adapter"} yet (no ${weights}); it appears when the task completes, or choose one of its checkpoints`
        : `${source.path} holds no ${weights}`,
    );
  }
  return source;
}

/** The task's checkpoint folders (either trainer's naming), lowest step first. */
export async function listCheckpoints(taskDir: string): Promise<string[]> {
  const dir = join(taskDir, "checkpoints");
  const found = [
    ...(await listCheckpointFolders(dir, "step-")),
    ...(await listCheckpointFolders(dir, "checkpoint-")),
  ];
  return found.sort((a, b) => a.step - b.step).map((c) => c.name);
}
