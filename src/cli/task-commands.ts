import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Command, InvalidArgumentError } from "commander";
import { loadEnv } from "../server/env";
import { taskDir } from "../server/home";
import { DIST_DIR } from "../server/package-root";
import { formatFileSize } from "../shared/file-size";
import { hfPeftPython } from "../trainers/hf-peft/setup-record";
import { hfPeftScriptPath } from "../trainers/launch";
import { connect, home } from "./client";
import { formatCell, print, table } from "./format";

const execFileAsync = promisify(execFile);

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
  trainer: "builtin" | "hf-peft" | "command";
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
    .description("a task's settings, status, attempts and events")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: { json?: boolean }) => {
      const detail = await connect().task.get.query({ id });
      print(opts.json ?? false, detail, () => {
        const t = detail.task;
        return [
          `${t.id}  ${t.name}`,
          `status:   ${t.status}${t.statusReason ? ` (${t.statusReason})` : ""}`,
          `progress: ${progressText(t.progress)}`,
          `model:    ${t.model} (${t.trainer}, ${t.mode})`,
          `dataset:  ${t.datasetPath} (${t.datasetFormat})`,
          `settings: ${JSON.stringify(t.hyperparameters)}`,
          `attempts: ${detail.attempts.length}`,
          "events:",
          ...detail.events.map((e) => `  ${formatCell(e.at)}  ${e.type}  ${e.message}`),
        ].join("\n");
      });
    });

  task
    .command("create")
    .description("create a task (it starts when you run `studio task start <id>`)")
    .requiredOption("--name <name>", "a name for the task")
    .option("--model <model>", "builtin:tiny, a hub id or a local path", "builtin:tiny")
    .option("--dataset <dataset>", "a dataset id or an absolute path", "sample")
    .option("--trainer <kind>", "builtin | hf-peft | command", "builtin")
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
    .option("--json", "machine-readable output")
    .action(async (opts: CreateOptions) => {
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
        trainer: opts.trainer,
        mode: opts.mode,
        gpus: opts.gpus,
        hyperparameters,
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

  for (const action of ["start", "cancel", "pause", "resume"] as const) {
    task
      .command(`${action} <id>`)
      .description(`${action} a task`)
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
    .action(async (id: string, opts: { follow?: boolean; lines: number }) => {
      await printLogs(id, opts.lines, opts.follow ?? false);
    });

  task
    .command("sample <id>")
    .description("generate text with a completed task's adapter on its base model")
    .requiredOption("--prompt <text>", "the text to continue")
    .option("--max-new-tokens <n>", "how much to generate", int, 200)
    .option("--temperature <x>", "0 = always the most likely next byte", num, 0.8)
    .option("--seed <n>", "random seed", int, 0)
    .action(
      async (
        id: string,
        opts: { prompt: string; maxNewTokens: number; temperature: number; seed: number },
      ) => {
        const { task: row } = await connect().task.get.query({ id });
        if (row.trainer === "command" || row.status !== "completed") {
          throw new Error(
            `task ${id} is a ${row.status} ${row.trainer} task; sampling needs a completed built-in or hf-peft task`,
          );
        }
        const args = [
          "--task-dir",
          taskDir(home(), id),
          "--prompt",
          opts.prompt,
          "--max-new-tokens",
          String(opts.maxNewTokens),
          "--temperature",
          String(opts.temperature),
          "--seed",
          String(opts.seed),
        ];
        // The trainer's own program samples (base model + adapter), so this command loads no
        // tensor library itself; the hf-peft one runs with the interpreter the studio would use.
        const [file, argv] =
          row.trainer === "builtin"
            ? [process.execPath, [join(DIST_DIR, "builtin-trainer.js"), "sample", ...args]]
            : [
                hfPeftPython(loadEnv().STUDIO_PYTHON, home()).path,
                [hfPeftScriptPath(DIST_DIR, "sample.py"), ...args],
              ];
        const { stdout, stderr } = await execFileAsync(file, argv, {
          env: { ...process.env, TOKENIZERS_PARALLELISM: "false" },
          maxBuffer: 16 * 1024 * 1024,
        });
        process.stderr.write(stderr);
        process.stdout.write(stdout);
      },
    );

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

/** Pages the log through the query API (no SSE client needed in a terminal). */
async function printLogs(id: string, recent: number, follow: boolean) {
  const client = connect();
  const tail = await client.task.logs.query({ id, limit: Math.max(1, Math.min(recent, 5000)) });
  for (const line of tail.lines) process.stdout.write(`${line.text}\n`);
  if (!follow) return;
  let after = tail.lines.at(-1)?.offset ?? null;
  for (;;) {
    const page = await client.task.logsAfter.query({ id, after, limit: 5000 });
    for (const line of page.lines) process.stdout.write(`${line.text}\n`);
    after = page.lines.at(-1)?.offset ?? after;
    if (page.lines.length === 0) {
      const { task } = await client.task.get.query({ id });
      if (!["pending", "queued", "preparing", "training", "paused"].includes(task.status)) return;
      await sleep(250);
    }
  }
}

function progressText(progress: Record<string, unknown>): string {
  const percent = progress.percent;
  return typeof percent === "number" ? `${percent.toFixed(1)}%` : "-";
}
