import type { RouterOutputs } from "../trpc/types";

/** What a task offers to run: its final adapter (when there is one) and each checkpoint. */
export type ModelChoices = RouterOutputs["task"]["models"];

/**
 * The weights a form runs: the reader's pick, else the final adapter (""), else the newest
 * checkpoint; null while the task has neither (there is nothing to run yet).
 */
export function chosenWeights(choices: ModelChoices, picked: string): string | null {
  if (!choices.final && choices.checkpoints.length === 0) return null;
  return picked || (choices.final ? "" : choices.checkpoints.at(-1)!);
}
