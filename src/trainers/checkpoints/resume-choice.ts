import { basename, dirname, join } from "node:path";

/**
 * Which checkpoints a resume may use, newest first. The studio asks for its last checkpoint;
 * when that one does not verify (cut short, corrupted, gone), the run goes on from the newest
 * earlier one of the same folder that does. Never from a later one: a folder with a higher step
 * than the one asked for was left by an attempt this run does not continue. Pure.
 */

/** The step a checkpoint folder's name stands for: `<prefix><step>`, digits without leading zeros. */
export function checkpointStep(name: string, prefix: string): number | null {
  if (!name.startsWith(prefix)) return null;
  const digits = name.slice(prefix.length);
  if (!/^(0|[1-9]\d{0,9})$/.test(digits)) return null;
  const step = Number(digits);
  return step <= 2 ** 31 - 1 ? step : null;
}

/**
 * The folders to try, in order: the one asked for, then its earlier siblings (names in the same
 * folder, as listed), newest first. A path whose name is not a checkpoint's is tried alone.
 */
export function resumeCandidates(
  requested: string,
  siblings: readonly string[],
  prefix: string,
): string[] {
  const requestedStep = checkpointStep(basename(requested), prefix);
  if (requestedStep === null) return [requested];
  const parent = dirname(requested);
  const earlier = siblings
    .map((name) => ({ name, step: checkpointStep(name, prefix) }))
    .filter((c): c is { name: string; step: number } => c.step !== null && c.step < requestedStep)
    .sort((a, b) => b.step - a.step)
    .map((c) => join(parent, c.name));
  return [requested, ...earlier];
}

export interface RejectedCheckpoint {
  path: string;
  reason: string;
}

/** How a path reads in a message: relative to the task folder when it is inside it. */
export function displayPath(path: string, taskDir: string): string {
  const prefix = taskDir.endsWith("/") ? taskDir : `${taskDir}/`;
  return path.startsWith(prefix) ? path.slice(prefix.length) : path;
}

function rejections(rejected: readonly RejectedCheckpoint[], taskDir: string): string {
  return rejected.map((r) => `${displayPath(r.path, taskDir)}: ${r.reason}`).join("; ");
}

/** The line that says a resume fell back, and why; null when the one asked for was used. */
export function fallbackMessage(
  chosen: string,
  rejected: readonly RejectedCheckpoint[],
  taskDir: string,
): string | null {
  if (rejected.length === 0) return null;
  return `resuming from ${displayPath(chosen, taskDir)} instead: ${rejections(rejected, taskDir)}`;
}

/** Why a resume cannot start: nothing it may use verifies. */
export function noCheckpointMessage(
  rejected: readonly RejectedCheckpoint[],
  taskDir: string,
): string {
  return `no checkpoint to resume from verifies (${rejections(rejected, taskDir)})`;
}
