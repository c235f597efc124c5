import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { ProgressLog } from "../progress-log";
import { PROGRESS_FILE, taskConfigSchema } from "../protocol";
import { estimateCheckpoint } from "./disk-forecast";
import { CheckpointKeeper, HF_PEFT_STYLE, NoCheckpointError } from "./keeper";

/**
 * `checkpoint-tool <resume|start|commit> --task-dir <dir> ...`: the CheckpointKeeper for the
 * Python trainer, so that both trainers keep, verify and choose checkpoints by the same code (one
 * manifest format, one retention rule, one disk forecast). train.py runs it as a child process.
 * It appends its events (checkpoint, warning) to progress.jsonl, prints its lines on stderr
 * (training.log) and its answer as one JSON object on stdout; when it cannot answer, exit code 1
 * and a line on stderr.
 *
 *   resume   --requested <dir> [--rejected '[{"path", "reason"}, ...]'] [--quiet]
 *            → {"path", "step", "sizes"} or {"error"}
 *   start    --step N --total-steps N [--evaluates] (--resumed-from <dir> | --trainable-bytes N)
 *            removes what a stopped writer left, then the disk forecast:
 *            → {"verdict": {"verdict", "message"?}, "warned"}
 *   commit   --staged <dir> --step N --total-steps N [--eval-loss X] [--load-failure <reason>]
 *            [--evaluates] [--warned]
 *            → {"path" (null when discarded), "disk"}
 */

// A stop is the trainer's to carry out, at the end of its step. The runner signals the trainer's
// whole process group, this tool (its child) included: a commit cut short by that SIGTERM made
// the trainer fail (exit 1) instead of stopping with its checkpoint. SIGKILL, after the grace
// period, still ends it; train.py runs it again should a signal come before these are in place.
process.on("SIGTERM", () => {});
process.on("SIGINT", () => {});

const count = z.coerce.number().int().min(0);
/** Checkpoints train.py found not to load, with why. */
const rejectedSchema = z.array(z.object({ path: z.string().min(1), reason: z.string() }));

async function main(argv: string[]): Promise<unknown> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      "task-dir": { type: "string" },
      requested: { type: "string" },
      rejected: { type: "string", default: "[]" },
      quiet: { type: "boolean", default: false },
      step: { type: "string" },
      "total-steps": { type: "string" },
      evaluates: { type: "boolean", default: false },
      warned: { type: "boolean", default: false },
      "resumed-from": { type: "string" },
      "trainable-bytes": { type: "string" },
      staged: { type: "string" },
      "eval-loss": { type: "string" },
      "load-failure": { type: "string" },
    },
  });
  const taskDir = values["task-dir"];
  if (!taskDir) throw new Error("--task-dir is required");
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  if (config.trainer !== "hf-peft") {
    throw new Error(`the checkpoint tool serves the hf-peft trainer, not ${config.trainer}`);
  }
  const progress = new ProgressLog(join(taskDir, PROGRESS_FILE));
  const keeper = new CheckpointKeeper(
    taskDir,
    HF_PEFT_STYLE,
    {
      totalSteps: values["total-steps"] === undefined ? 0 : count.parse(values["total-steps"]),
      saveSteps: config.hyperparameters.saveSteps,
      keepLast: config.hyperparameters.keepCheckpoints,
      evaluates: values.evaluates,
    },
    values.quiet
      ? { saved: () => {}, warn: () => {}, print: () => {} }
      : {
          saved: (step, path) => progress.write({ event: "checkpoint", step, path }),
          warn: (kind, message, step) => progress.warn(kind, message, step),
          print: (line) => console.error(`[hf-peft] ${line}`),
        },
  );

  switch (command) {
    case "resume": {
      if (!values.requested) throw new Error("resume needs --requested");
      const rejected = rejectedSchema.parse(JSON.parse(values.rejected));
      try {
        return await keeper.chooseResume(values.requested, { rejected });
      } catch (err) {
        if (err instanceof NoCheckpointError) return { error: err.message };
        throw err;
      }
    }
    case "start": {
      const resumed = values["resumed-from"];
      const sizes = resumed
        ? await keeper.sizesOf(resumed)
        : estimateCheckpoint(count.parse(values["trainable-bytes"]));
      await keeper.clearLeftovers();
      return keeper.forecastAtStart(count.parse(values.step), sizes, resumed !== undefined);
    }
    case "commit": {
      if (!values.staged) throw new Error("commit needs --staged");
      const evalLoss = values["eval-loss"] === undefined ? null : Number(values["eval-loss"]);
      return keeper.commit({
        staged: values.staged,
        step: count.parse(values.step),
        evalLoss: evalLoss !== null && Number.isFinite(evalLoss) ? evalLoss : null,
        ...(values["load-failure"] ? { loadFailure: values["load-failure"] } : {}),
        diskWarned: values.warned,
      });
    }
    default:
      throw new Error(`unknown command ${command ?? "(none)"}: resume, start or commit`);
  }
}

main(process.argv.slice(2)).then(
  (answer) => {
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  },
  (error: unknown) => {
    console.error(`checkpoint-tool: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
