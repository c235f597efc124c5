import type { TrainerKind } from "../trainers/protocol";

const COMMAND_USAGE =
  "give the command's program and arguments after --, one word each, as a shell would split them: studio task create --name x --trainer command -- python train.py --lr 1e-4";

/**
 * The trainer of a new task: a command after -- means the command trainer (said or implied);
 * the command trainer without one, or one given with another trainer, is refused.
 */
export function trainerOf(
  argv: readonly string[],
  opts: { trainer: TrainerKind; command?: string },
  trainerDefaulted: boolean,
): TrainerKind {
  if (opts.command !== undefined) throw new Error(`--command is not an option; ${COMMAND_USAGE}`);
  if (argv.length === 0) {
    if (opts.trainer === "command")
      throw new Error(`the command trainer needs a command; ${COMMAND_USAGE}`);
    return opts.trainer;
  }
  if (opts.trainer === "command" || trainerDefaulted) return "command";
  throw new Error(
    `a command after -- is for the command trainer, not ${opts.trainer}; leave out --trainer or give --trainer command`,
  );
}
