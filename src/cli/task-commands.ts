import { type Command, InvalidArgumentError } from "commander";
import { connect } from "./client";
import { formatCell, print, table } from "./format";

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
      });
      print(opts.json ?? false, created, () => `created task ${created.id}`);
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

function progressText(progress: Record<string, unknown>): string {
  const percent = progress.percent;
  return typeof percent === "number" ? `${percent.toFixed(1)}%` : "-";
}
