import { join } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { DIST_DIR } from "../platform/package-root";
import { loadEnv } from "../server/env";
import { taskDir } from "../server/home";
import { formatFileSize } from "../shared/file-size";
import { hfPeftPython } from "../trainers/hf-peft/setup-record";
import { GenerationServer } from "../trainers/playground/generation-server";
import { resolveModelSource } from "../trainers/playground/model-source";
import { generationSettingsSchema } from "../trainers/playground/protocol";
import { serverCommand } from "../trainers/playground/server-command";
import type { TrainerKind } from "../trainers/protocol";
import { connect, home, lastStudioTarget, type StudioClient } from "./client";
import { trainerOf } from "./command-trainer";
import { print, table } from "./format";
import {
  evaluationSetText,
  evaluationsTable,
  evaluationText,
  progressText,
  statusText,
  taskDetailText,
} from "./task-text";

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("expected a whole number");
  return n;
}

function num(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError("expected a number");
  return n;
}

interface CreateOptions {
  name: string;
  model: string;
  dataset: string;
  trainer: TrainerKind;
  mode: "lora" | "pretrain";
  gpus: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  maxLength?: number;
  loraRank?: number;
  loraAlpha?: number;
  seed?: number;
  saveSteps?: number;
  keepCheckpoints?: number;
  memoryMb?: number;
  cpus?: number;
  maxMinutes?: number;
  nice?: number;
  processes?: number;
  evalDataset?: string;
  /** Not an option: named only to answer it (the command goes after --). */
  command?: string;
  json?: boolean;
}

export function registerTaskCommands(task: Command) {
  task
    .command("list")
    .description("list tasks, newest first")
    .option("--status <statuses>", "comma-separated statuses to show")
    .option("--limit <n>", "how many", int, 100)
    .option("--json", "machine-readable output")
    .action(async (opts: { status?: string; limit: number; json?: boolean }) => {
      const status = opts.status?.split(",") as never;
      const page = await connect().task.list.query({ status, limit: opts.limit });
      print(opts.json ?? false, page.items, () =>
        table(
          page.items.map((t) => ({
            id: t.id,
            name: t.name,
            status: t.status,
            progress: progressText(t.progress),
            trainer: t.trainer,
            model: t.model,
            created: t.createdAt,
          })),
          ["id", "name", "status", "progress", "trainer", "model", "created"],
        ),
      );
    });

  task
    .command("show <id>")
    .description("a task's settings, status, attempts (with their processes) and events")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { json?: boolean }) => {
      const detail = await connect().task.get.query({ id });
      print(opts.json ?? false, detail, () => taskDetailText(detail));
    });

  task
    .command("create")
    .description(
      "create a task (it starts when you run `studio task start <id>`); a custom command goes after --",
    )
    .argument("[command...]", "the command trainer's program and arguments, after --")
    .requiredOption("--name <name>", "a name for the task")
    .option("--model <model>", "builtin:tiny, a hub id or a local path", "builtin:tiny")
    .option("--dataset <dataset>", "a dataset id or an absolute path", "sample")
    .option(
      "--trainer <kind>",
      "builtin | hf-peft | command (implied by a command after --)",
      "builtin",
    )
    .option("--mode <mode>", "lora | pretrain (builtin)", "lora")
    .option("--gpus <n>", "GPUs to hand the task", int, 0)
    .option("--epochs <n>", "epochs", int)
    .option("--lr <x>", "learning rate", num)
    .option("--batch-size <n>", "batch size", int)
    .option("--max-length <n>", "maximum sequence length", int)
    .option("--lora-rank <n>", "LoRA rank", int)
    .option("--lora-alpha <x>", "LoRA alpha", num)
    .option("--seed <n>", "random seed", int)
    .option("--save-steps <n>", "checkpoint every N steps", int)
    .option(
      "--keep-checkpoints <n>",
      "checkpoints kept on disk: the last N (default 3), and the best by eval loss",
      int,
    )
    .option("--memory-mb <n>", "memory limit for the trainer (a control group)", int)
    .option("--cpus <x>", "CPU limit, in cores (a control group)", num)
    .option("--max-minutes <n>", "stop the trainer after this many minutes", int)
    .option("--nice <n>", "CPU priority of the trainer, 0-19", int)
    .option("--processes <n>", "hf-peft on the CPU: processes training together (torchrun)", int)
    .option(
      "--eval-dataset <id>",
      "an evaluation set: a stored dataset's id every checkpoint is scored on (studio dataset list)",
    )
    .addOption(new Option("--command <text>").hideHelp())
    .option("--json", "machine-readable output")
    .action(async (argv: string[], opts: CreateOptions, command: Command) => {
      const trainer = trainerOf(argv, opts, command.getOptionValueSource("trainer") === "default");
      const hyperparameters = Object.fromEntries(
        Object.entries({
          epochs: opts.epochs,
          learningRate: opts.lr,
          batchSize: opts.batchSize,
          maxLength: opts.maxLength,
          loraRank: opts.loraRank,
          loraAlpha: opts.loraAlpha,
          seed: opts.seed,
          saveSteps: opts.saveSteps,
          keepCheckpoints: opts.keepCheckpoints,
          processes: opts.processes,
        }).filter(([, v]) => v !== undefined),
      );
      const created = await connect().task.create.mutate({
        name: opts.name,
        model: opts.model,
        dataset: opts.dataset,
        trainer,
        mode: opts.mode,
        command: trainer === "command" ? argv : undefined,
        gpus: opts.gpus,
        hyperparameters,
        evaluationDataset: opts.evalDataset,
        limits: Object.fromEntries(
          Object.entries({
            memoryMb: opts.memoryMb,
            cpus: opts.cpus,
            maxRunMinutes: opts.maxMinutes,
            nice: opts.nice,
          }).filter(([, v]) => v !== undefined),
        ),
      });
      print(opts.json ?? false, created, () => `created task ${created.id}`);
    });

  task
    .command("start <id>")
    .description("queue a pending task to train")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { json?: boolean }) => {
      const client = connect();
      const { task: before } = await client.task.get.query({ id });
      // The studio's start leaves a task that already runs as it is; a paused one would stay
      // paused, which is not what "start" asks for.
      if (before.status === "paused") {
        throw new Error(
          `task ${id} is paused; start does nothing: resume it with "studio task resume ${id}"`,
        );
      }
      const row = await client.task.start.mutate({ id });
      const already = before.status !== "pending";
      print(opts.json ?? false, { ...row, alreadyStarted: already }, () =>
        already ? `${row.id}: already ${row.status}; nothing to start` : `${row.id}: ${row.status}`,
      );
    });

  task
    .command("cancel <id>")
    .description("cancel a task; waits until its trainer has stopped (it may save a checkpoint)")
    .option("--no-wait", "return once the cancel is asked, while the trainer stops")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { wait: boolean; json?: boolean }) => {
      const client = connect();
      let row = await client.task.cancel.mutate({ id });
      if (isStopping(row.status) && opts.wait) {
        if (!opts.json) console.error(`${id}: cancel requested; waiting for the trainer to stop…`);
        row = await waitUntilStopped(client, id);
      }
      print(opts.json ?? false, row, () =>
        isStopping(row.status)
          ? `${row.id}: cancel requested; the trainer is stopping (${row.status} until it has)`
          : `${row.id}: ${statusText(row.status, row.statusReason)}`,
      );
    });

  for (const action of ["pause", "resume"] as const) {
    task
      .command(`${action} <id>`)
      .description(`${action} a training task`)
      .option("--json", "machine-readable output")
      .action(async (id: string, opts: { json?: boolean }) => {
        const row = await connect().task[action].mutate({ id });
        print(opts.json ?? false, row, () => `${row.id}: ${row.status}`);
      });
  }

  task
    .command("retry <id>")
    .description("run a failed, cancelled or interrupted task again as a new attempt")
    .option("--from-checkpoint", "continue from the last checkpoint")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { fromCheckpoint?: boolean; json?: boolean }) => {
      const row = await connect().task.retry.mutate({
        id,
        fromCheckpoint: opts.fromCheckpoint ?? false,
      });
      print(opts.json ?? false, row, () => `${row.id}: ${row.status}`);
    });

  task
    .command("logs <id>")
    .description("print the training log; -f follows it until the task ends")
    .option("-f, --follow", "keep printing new lines")
    .option("-n, --lines <n>", "how many recent lines to start with", int, 100)
    .option("--json", "one JSON object a line: the line's text and its byte offset in training.log")
    .action(async (id: string, opts: { follow?: boolean; lines: number; json?: boolean }) => {
      await printLogs(id, opts.lines, opts.follow ?? false, opts.json ?? false);
    });

  task
    .command("sample <id>")
    .description(
      "generate text with a task's adapter (or a checkpoint's, or the base model alone), streamed as it is drawn",
    )
    .requiredOption("--prompt <text>", "the text to continue")
    .option("--max-new-tokens <n>", "how much to generate", int, 200)
    .option("--temperature <x>", "0 = always the most likely next token", num, 0.8)
    .option(
      "--top-p <p>",
      "draw only from the most likely tokens that hold this much probability",
      num,
      1,
    )
    .option("--seed <n>", "random seed: the same seed gives the same text", int, 0)
    .option(
      "--checkpoint <name>",
      "use this checkpoint (e.g. step-20) instead of the final adapter",
    )
    .option("--base", "the base model alone, without the adapter")
    .option("--json", "machine-readable output: the generated text as {text}, once done")
    .action(
      async (
        id: string,
        opts: {
          prompt: string;
          maxNewTokens: number;
          temperature: number;
          topP: number;
          seed: number;
          checkpoint?: string;
          base?: boolean;
          json?: boolean;
        },
      ) => {
        const client = connect();
        const { task: row } = await client.task.get.query({ id });
        // The studio's home, which may not be this terminal's (see locateStudio).
        const studioHome = lastStudioTarget()?.home ?? home();
        if (row.trainer === "command") {
          throw new Error(
            `task ${id} ran a custom command; sampling needs a built-in or hf-peft task`,
          );
        }
        const settings = generationSettingsSchema.parse({
          maxNewTokens: opts.maxNewTokens,
          temperature: opts.temperature,
          topP: opts.topP,
          seed: opts.seed,
        });
        const dir = row.folder ?? taskDir(studioHome, id);
        const source = await resolveModelSource(
          dir,
          opts.checkpoint ?? null,
          row.trainer === "builtin" ? row.mode : "lora",
        );
        // The trainer's own generation server (base model + adapter), so this command loads no
        // tensor library itself; the hf-peft one runs with the interpreter the studio would use.
        const command = serverCommand(
          row.trainer,
          {
            nodePath: process.execPath,
            distDir: DIST_DIR,
            pythonPath:
              row.trainer === "hf-peft"
                ? hfPeftPython(loadEnv().STUDIO_PYTHON, studioHome).path
                : null,
          },
          { taskDir: dir, source: join(dir, source.path) },
        );
        const server = new GenerationServer({
          ...command,
          env: { ...process.env, TOKENIZERS_PARALLELISM: "false" },
          onStderrLine: (line) => process.stderr.write(`${line}\n`),
        });
        let text = "";
        try {
          for await (const piece of server.generate({
            side: opts.base ? "base" : "adapter",
            prompt: opts.prompt,
            ...settings,
          })) {
            text += piece;
            if (!opts.json) process.stdout.write(piece);
          }
        } finally {
          server.close();
        }
        if (opts.json) print(true, { text }, () => text);
        else process.stdout.write("\n");
      },
    );

  task
    .command("evaluate <id>")
    .description(
      "evaluate a task's adapter (or a checkpoint) on a stored dataset: loss, perplexity, and for instruction data exact match and sample answers; waits and prints them",
    )
    .requiredOption("--dataset <id>", "a stored dataset's id (studio dataset list)")
    .option(
      "--checkpoint <name>",
      "evaluate this checkpoint (e.g. step-20) instead of the final adapter",
    )
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { dataset: string; checkpoint?: string; json?: boolean }) => {
      const client = connect();
      const started = await client.task.evaluate.mutate({
        id,
        dataset: opts.dataset,
        checkpoint: opts.checkpoint,
      });
      let status = started;
      while (status.state === "running") {
        await sleep(500);
        const all = await client.task.evaluations.query({ id });
        status = all.find((e) => e.id === started.id) ?? status;
      }
      if (status.state === "failed") throw new Error(`evaluation failed: ${status.reason}`);
      print(opts.json ?? false, status, () => evaluationText(status));
    });

  task
    .command("eval-set <id> [dataset]")
    .description(
      "attach an evaluation set (a stored dataset's id) to a task: every checkpoint it writes, and each already there, is scored on it once; --none detaches it",
    )
    .option("--none", "detach the task's evaluation set")
    .option("--json", "machine-readable output")
    .action(
      async (id: string, dataset: string | undefined, opts: { none?: boolean; json?: boolean }) => {
        if ((dataset === undefined) === !opts.none) {
          throw new Error("name a dataset id to attach, or --none to detach (not both)");
        }
        const row = await connect().task.setEvaluationSet.mutate({ id, dataset: dataset ?? null });
        print(opts.json ?? false, row, () => evaluationSetText(row));
      },
    );

  task
    .command("evaluations <id>")
    .description(
      "a task's evaluations, newest first: the ones asked for and its evaluation set's scores by checkpoint",
    )
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { json?: boolean }) => {
      const all = await connect().task.evaluations.query({ id });
      print(opts.json ?? false, all, () => evaluationsTable(all));
    });

  task
    .command("export <id>")
    .description(
      "merge a completed task's adapter into its base model (tasks/<id>/export/, with provenance.json); waits and prints the files",
    )
    .option(
      "--checkpoint <name>",
      "export this checkpoint instead (e.g. step-20 or checkpoints/step-20)",
    )
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { checkpoint?: string; json?: boolean }) => {
      const client = connect();
      const started = await client.task.export.mutate({ id, checkpoint: opts.checkpoint });
      let status = started;
      while (status.state === "running") {
        await sleep(500);
        status = await client.task.exportStatus.query({ id });
        // Another export replaced this one meanwhile: report that one, as the folder holds it.
      }
      if (status.state !== "done") {
        throw new Error(
          status.state === "failed" ? `export failed: ${status.reason}` : "the export disappeared",
        );
      }
      const files = status.files.map((f) => ({ path: join(status.folder, f.name), size: f.size }));
      print(opts.json ?? false, { ...status, files }, () =>
        files.map((f) => `${f.path}\t${formatFileSize(f.size)}`).join("\n"),
      );
    });

  task
    .command("delete <id>")
    .description("delete a task that is not running, with its files")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { json?: boolean }) => {
      const deleted = await connect().task.delete.mutate({ id });
      print(opts.json ?? false, deleted, () => `deleted task ${deleted.id}`);
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An attempt may still be running: the cancel is asked, the trainer not yet stopped. */
function isStopping(status: string): boolean {
  return ["preparing", "training", "paused"].includes(status);
}

/**
 * Until the cancelled task's trainer has stopped. The runner holds the grace period and then
 * kills it, so this ends without a deadline of its own; a studio that stops answering ends it
 * with that error.
 */
async function waitUntilStopped(client: StudioClient, id: string) {
  for (;;) {
    const { task } = await client.task.get.query({ id });
    if (!isStopping(task.status)) return task;
    await sleep(250);
  }
}

/** Pages the log through the query API (no SSE client needed in a terminal). */
async function printLogs(id: string, recent: number, follow: boolean, json: boolean) {
  const client = connect();
  const write = (lines: { offset: number; text: string }[]) => {
    for (const line of lines) {
      process.stdout.write(
        json ? `${JSON.stringify({ offset: line.offset, text: line.text })}\n` : `${line.text}\n`,
      );
    }
  };
  const tail = await client.task.logs.query({ id, limit: Math.max(1, Math.min(recent, 5000)) });
  write(tail.lines);
  if (!follow) return;
  let after = tail.lines.at(-1)?.offset ?? null;
  for (;;) {
    const page = await client.task.logsAfter.query({ id, after, limit: 5000 });
    write(page.lines);
    after = page.lines.at(-1)?.offset ?? after;
    if (page.lines.length === 0) {
      const { task } = await client.task.get.query({ id });
      if (!["pending", "queued", "preparing", "training", "paused"].includes(task.status)) return;
      await sleep(250);
    }
  }
}
