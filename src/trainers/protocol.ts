import { z } from "zod";

/**
 * The contract between the studio and every trainer. A trainer is a program run as
 * `<trainer> --task-dir <dir>`: it reads `<dir>/config.json`, appends one JSON object per
 * line to `<dir>/progress.jsonl`, prints human-readable lines on stdout/stderr (the runner
 * sends both to `<dir>/training.log`), writes checkpoints under `<dir>/checkpoints/` and the
 * adapter into `<dir>`, and reports success only through exit code 0.
 */

/** Where a trainer appends its protocol events, in the task folder. */
export const PROGRESS_FILE = "progress.jsonl";

/**
 * The studio's record of what the task is (src/server/tasks/task-record.ts), in the task folder.
 * A trainer reads one field of it: `evaluationSet`, whether each checkpoint's weights are kept
 * for the task's standing evaluation (src/trainers/evaluate/kept-weights.ts).
 */
export const TASK_RECORD_FILE = "task.json";

export const TRAINER_KINDS = ["builtin", "hf-peft", "command"] as const;
export const trainerKindSchema = z.enum(TRAINER_KINDS);
export type TrainerKind = z.infer<typeof trainerKindSchema>;

export const DATASET_FORMATS = ["alpaca", "chat", "text"] as const;
export const datasetFormatSchema = z.enum(DATASET_FORMATS);
export type DatasetFormat = z.infer<typeof datasetFormatSchema>;

/** Hyperparameters a person sets on the create form; bounds keep a typo from becoming a week-long run. */
export const hyperparametersSchema = z.object({
  epochs: z.number().int().min(1).max(1000).default(3),
  learningRate: z.number().gt(0).max(1).default(0.0002),
  batchSize: z.number().int().min(1).max(4096).default(8),
  maxLength: z.number().int().min(8).max(32768).default(128),
  loraRank: z.number().int().min(1).max(1024).default(8),
  loraAlpha: z.number().min(0.01).max(4096).default(16),
  loraDropout: z.number().min(0).max(0.9).default(0.05),
  targetModules: z
    .array(
      z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-' only"),
    )
    .min(1)
    .max(32)
    .default(["q_proj", "v_proj"]),
  warmupRatio: z.number().min(0).max(1).default(0.05),
  weightDecay: z.number().min(0).max(1).default(0),
  maxGradNorm: z.number().min(0).max(1000).default(1),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(42),
  evalSplit: z.number().min(0).max(0.5).default(0.1),
  evalSteps: z.number().int().min(1).max(1_000_000).default(50),
  saveSteps: z.number().int().min(1).max(1_000_000).default(100),
  loggingSteps: z.number().int().min(1).max(1_000_000).default(5),
  /**
   * How many of the latest checkpoints a run keeps on disk; the best one by eval loss is kept
   * beside them when the run evaluates.
   */
  keepCheckpoints: z.number().int().min(1).max(10_000).default(3),
  /**
   * hf-peft on the CPU: how many processes train together under torchrun (gloo); the global
   * batch is batchSize times this. A task given GPUs runs one process per GPU instead.
   */
  processes: z.number().int().min(1).max(64).optional(),
});
export type Hyperparameters = z.infer<typeof hyperparametersSchema>;

/**
 * The learning rate a task gets when none is given. The built-in model is tiny and its base is
 * a random initialisation, so its adapters need a step ten times larger than LoRA on a
 * pretrained model (measured: 2e-4 barely moves its loss in 3 epochs; 2e-3 lowers it clearly).
 */
export const DEFAULT_LEARNING_RATE: Record<TrainerKind, number> = {
  builtin: 2e-3,
  "hf-peft": 2e-4,
  command: 2e-4,
};

/** `config.json`: the immutable snapshot a trainer reads. Paths are absolute. */
export const taskConfigSchema = z.object({
  taskId: z.string(),
  attempt: z.number().int().min(1),
  trainer: trainerKindSchema,
  /** builtin: "builtin:tiny" or a path to a `.safetensors` base; hf-peft: a hub id or a local folder. */
  model: z.string(),
  /** builtin only: "lora" trains adapters on a frozen base, "pretrain" trains every weight. */
  mode: z.enum(["lora", "pretrain"]).default("lora"),
  dataset: z.object({ path: z.string(), format: datasetFormatSchema }),
  taskDir: z.string(),
  hyperparameters: hyperparametersSchema,
  /** Checkpoint folder (absolute) to continue from, or null for a fresh start. */
  resumeFrom: z.string().nullable().default(null),
  /** GPU ids handed to this attempt; empty on a CPU slot. */
  gpus: z.array(z.string()).default([]),
  /** `command` kind only: the argv to run, never a shell string. */
  command: z.array(z.string()).nullable().default(null),
});
export type TaskConfig = z.infer<typeof taskConfigSchema>;

/** The largest value of PostgreSQL's `integer`, where steps are stored. */
export const MAX_INT4 = 2 ** 31 - 1;
/** The longest string a progress event may carry (a checkpoint path, a stop reason). */
export const MAX_EVENT_STRING = 1024;

// Every number is finite (zod refuses Infinity; JSON has no NaN), within what the studio stores.
/** Unix seconds, float; 0 to 10^10 (year 2286), so `time * 1000` is a valid Date. */
const time = z.number().min(0).max(1e10).optional();
/** A count of steps: stored as PostgreSQL `integer`. */
const steps = z.number().int().min(0).max(MAX_INT4);
/** Epochs (fractional, as Hugging Face counts them). */
const epochs = z.number().min(0).max(MAX_INT4);
/** A measured value (loss, rate, norm): any finite number. */
const measure = z.number();
/** A checkpoint folder relative to the task folder: no absolute path, no "..", no NUL. */
const relativePath = z
  .string()
  .min(1)
  .max(MAX_EVENT_STRING)
  .refine((p) => !p.startsWith("/") && !p.startsWith("\\"), "must be relative to the task folder")
  .refine((p) => !p.split(/[\\/]/).includes(".."), 'must not contain ".."')
  .refine((p) => !p.includes("\0"), "must not contain NUL");

/**
 * One line of `progress.jsonl`. `epoch` is fractional epochs completed, as Hugging Face counts.
 * A line that does not match is skipped by the studio (and counted, and reported as a warning).
 */
export const progressEventSchema = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("started"),
    time,
    total_epochs: epochs,
    total_steps: steps,
    resumed_from_step: steps.optional(),
  }),
  z.object({
    event: z.literal("progress"),
    time,
    epoch: epochs,
    total_epochs: epochs,
    step: steps,
    total_steps: steps,
    loss: measure.optional(),
    /** In place of `loss` when it was not a number (JSON has no NaN): the run has diverged. */
    loss_not_finite: z.enum(["nan", "inf", "-inf"]).optional(),
    learning_rate: measure.optional(),
    grad_norm: measure.optional(),
    tokens_per_second: measure.optional(),
  }),
  z.object({
    event: z.literal("eval"),
    time,
    epoch: epochs.optional(),
    step: steps,
    eval_loss: measure,
  }),
  z.object({
    event: z.literal("checkpoint"),
    time,
    step: steps,
    /** relative to the task folder, e.g. "checkpoints/step-100" */
    path: relativePath,
  }),
  z.object({
    event: z.literal("completed"),
    time,
    step: steps,
    train_loss: measure.optional(),
    eval_loss_base: measure.optional(),
    eval_loss_adapter: measure.optional(),
    runtime_s: measure.optional(),
  }),
  z.object({
    event: z.literal("stopped"),
    time,
    step: steps,
    reason: z.string().max(MAX_EVENT_STRING),
  }),
  /**
   * Something a person should know that does not stop the run: a checkpoint discarded, a resume
   * that fell back to an earlier checkpoint, a disk that will not hold the run. The studio shows
   * it as a warning on the task. `kind` names which (see src/trainers/checkpoints/keeper.ts).
   */
  z.object({
    event: z.literal("warning"),
    time,
    kind: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, "lowercase letters, digits and '-'"),
    message: z.string().min(1).max(MAX_EVENT_STRING),
    step: steps.optional(),
  }),
  /**
   * Why the trainer is about to exit with a failure, in its own words (an exception, a worker of
   * torchrun that died and its rank); the studio adds it to the task's failure reason. The last
   * one of an attempt counts.
   */
  z.object({
    event: z.literal("failed"),
    time,
    reason: z.string().min(1).max(MAX_EVENT_STRING),
  }),
]);
export type ProgressEvent = z.infer<typeof progressEventSchema>;
