import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { NoCheckpointError } from "../checkpoints/keeper";
import { readDatasetTexts } from "../dataset";
import { ProgressLog } from "../progress-log";
import { datasetFormatSchema, PROGRESS_FILE, taskConfigSchema } from "../protocol";
import { saveModel } from "./base-model";
import { evaluateModel } from "./evaluate";
import { mergedModel } from "./merge";
import { sampleText } from "./sample";
import { serve } from "./serve";
import { RefusedToStart, train } from "./train";

/**
 * `builtin-trainer --task-dir <dir> [--resume-from <checkpoint>]` trains;
 * `builtin-trainer sample --task-dir <dir> --prompt <text>` prints a continuation;
 * `builtin-trainer serve --task-dir <dir> --source <dir>` answers generation requests on stdin
 * (src/trainers/playground/protocol.ts);
 * `builtin-trainer evaluate --task-dir <dir> --source <dir> --dataset <file> --format <f>` prints
 * the evaluation's results as one JSON line;
 * `builtin-trainer merge --task-dir <dir> --source <dir> --out <dir>` writes the full model the
 * task's adapter (in `--source`: the task folder or one of its checkpoints) makes of its base.
 * SIGTERM (or SIGINT) stops training after the current step with a checkpoint; exit code 143.
 */

const STOPPED_EXIT_CODE = 143;

const sampleOptionsSchema = z.object({
  maxNewTokens: z.coerce.number().int().min(1).max(100_000),
  temperature: z.coerce.number().min(0).max(100),
  seed: z.coerce.number().int().min(0),
});

async function runTraining(taskDir: string, resumeFrom: string | undefined): Promise<number> {
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  if (resumeFrom) config.resumeFrom = resumeFrom;
  let stopRequested = false;
  const requestStop = () => {
    stopRequested = true;
  };
  process.on("SIGTERM", requestStop);
  process.on("SIGINT", requestStop);
  const texts = await readDatasetTexts(config.dataset.path, config.dataset.format);
  try {
    const outcome = await train(config, texts, {
      shouldStop: () => stopRequested,
      print: (line) => console.log(line),
    });
    return outcome === "stopped" ? STOPPED_EXIT_CODE : 0;
  } catch (err) {
    // A refusal is the trainer's own account of why it cannot run: the studio shows it as the
    // failure's reason. Anything else is judged from the log as before.
    if (err instanceof RefusedToStart || err instanceof NoCheckpointError) {
      new ProgressLog(join(taskDir, PROGRESS_FILE)).write({
        event: "failed",
        reason: err.message.slice(0, 1000),
      });
    }
    throw err;
  }
}

/** The merged model as a base model file (model.safetensors, its architecture inside) and config.json. */
async function runMerge(taskDir: string, source: string, out: string): Promise<number> {
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const model = await mergedModel(config.model, config.mode, source);
  await saveModel(join(out, "model.safetensors"), model);
  await writeFile(
    join(out, "config.json"),
    `${JSON.stringify({ version: 1, architecture: "finetune-studio-builtin", ...model.config }, null, 2)}\n`,
  );
  console.log(
    `merged ${source} into ${config.model}: ${model.weights.size} weights written to ${out}`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "task-dir": { type: "string" },
      "resume-from": { type: "string" },
      prompt: { type: "string" },
      source: { type: "string" },
      out: { type: "string" },
      dataset: { type: "string" },
      format: { type: "string" },
      "max-new-tokens": { type: "string", default: "200" },
      temperature: { type: "string", default: "0.8" },
      seed: { type: "string", default: "0" },
    },
  });
  const taskDir = values["task-dir"];
  if (!taskDir) throw new Error("--task-dir is required");
  if (positionals[0] === "sample") {
    if (values.prompt === undefined) throw new Error("sample needs --prompt");
    const text = await sampleText(
      taskDir,
      values.prompt,
      sampleOptionsSchema.parse({
        maxNewTokens: values["max-new-tokens"],
        temperature: values.temperature,
        seed: values.seed,
      }),
    );
    console.log(text);
    return 0;
  }
  if (positionals[0] === "serve") {
    if (!values.source) throw new Error("serve needs --source");
    return serve(taskDir, values.source);
  }
  if (positionals[0] === "evaluate") {
    if (!values.source || !values.dataset) throw new Error("evaluate needs --source and --dataset");
    const format = datasetFormatSchema.parse(values.format);
    const results = await evaluateModel(taskDir, values.source, values.dataset, format);
    console.log(JSON.stringify(results));
    return 0;
  }
  if (positionals[0] === "merge") {
    if (!values.source || !values.out) throw new Error("merge needs --source and --out");
    return runMerge(taskDir, values.source, values.out);
  }
  if (positionals.length > 0) throw new Error(`unknown command ${positionals[0]}`);
  return runTraining(taskDir, values["resume-from"]);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`builtin-trainer: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
