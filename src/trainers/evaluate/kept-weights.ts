import { copyFile, link, lstat, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { readStat } from "../../platform/identity";
import { TASK_RECORD_FILE } from "../protocol";
import { EVAL_FOLDER } from "./eval-record";

/**
 * The weights of a checkpoint kept for the task's standing evaluation, in
 * `eval/checkpoints/<name>/`: hard links to the checkpoint's weight files (a copy where the
 * file system has none), made when the checkpoint is committed (by the trainer's checkpoint
 * keeper) or found (by the studio). A checkpoint the run's retention removes before its turn to
 * be scored is still scored from them; the studio removes them once it is.
 */

export const KEPT_WEIGHTS_FOLDER = join(EVAL_FOLDER, "checkpoints");

/** What an evaluation reads of a checkpoint: an adapter and its config, or whole weights. */
const WEIGHT_FILES = ["adapter_model.safetensors", "adapter_config.json", "model.safetensors"];

/** Folders being written or removed: hidden, named by the process doing it. */
const UNDER_WAY = /^\.(tmp|removing)-.+-(\d+)$/;

export function keptWeightsPath(taskDir: string, name: string): string {
  return join(taskDir, KEPT_WEIGHTS_FOLDER, name);
}

/**
 * Whether the task has an evaluation set attached, from its task.json (read on every checkpoint,
 * so a set attached while the run goes on counts from the next one). No record, or one that
 * cannot be read, means none.
 */
export async function hasEvaluationSet(taskDir: string): Promise<boolean> {
  try {
    const record = JSON.parse(await readFile(join(taskDir, TASK_RECORD_FILE), "utf8")) as {
      evaluationSet?: unknown;
    };
    return record.evaluationSet !== null && typeof record.evaluationSet === "object";
  } catch {
    return false;
  }
}

/**
 * Keeps the weights of `checkpoints/<name>`: staged in a hidden folder and renamed into place,
 * so a kept folder is whole. "already" when they were kept before (by the keeper or the studio);
 * "gone" when the checkpoint holds no weights any more.
 */
export async function keepWeights(
  taskDir: string,
  name: string,
): Promise<"kept" | "already" | "gone"> {
  const target = keptWeightsPath(taskDir, name);
  if (
    await lstat(target).then(
      (info) => info.isDirectory(),
      () => false,
    )
  )
    return "already";
  const parent = join(taskDir, KEPT_WEIGHTS_FOLDER);
  const staging = join(parent, `.tmp-${name}-${process.pid}`);
  await mkdir(parent, { recursive: true });
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging);
  try {
    let kept = 0;
    for (const file of WEIGHT_FILES) {
      const from = join(taskDir, "checkpoints", name, file);
      try {
        await link(from, join(staging, file));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") continue;
        if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK") throw err;
        await copyFile(from, join(staging, file));
      }
      kept++;
    }
    if (kept === 0) return "gone";
    try {
      await rename(staging, target);
      return "kept";
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") return "already";
      throw err;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The checkpoints whose weights are kept, and folders a stopped writer or remover left. */
export async function listKeptWeights(
  taskDir: string,
): Promise<{ names: string[]; leftovers: string[] }> {
  let entries: string[];
  try {
    entries = await readdir(join(taskDir, KEPT_WEIGHTS_FOLDER));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { names: [], leftovers: [] };
    throw err;
  }
  const names = entries.filter((e) => !e.startsWith(".")).sort();
  const leftovers = entries.filter((e) => {
    const writer = UNDER_WAY.exec(e)?.[2];
    return writer !== undefined && readStat(Number(writer)) === null;
  });
  return { names, leftovers };
}

/** Removes kept weights (or a leftover staging folder): renamed away first, so none is half there. */
export async function releaseKeptWeights(taskDir: string, entry: string): Promise<void> {
  const path = join(taskDir, KEPT_WEIGHTS_FOLDER, entry);
  const aside = join(taskDir, KEPT_WEIGHTS_FOLDER, `.removing-${entry}-${process.pid}`);
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  await rm(aside, { recursive: true, force: true });
}
