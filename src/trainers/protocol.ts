import { z } from "zod";

/**
 * The contract between the studio and every trainer. A trainer is a program run as
 * `<trainer> --task-dir <dir>`: it reads `<dir>/config.json`, appends one JSON object per
 * line to `<dir>/progress.jsonl`, prints human-readable lines on stdout/stderr (the runner
 * sends both to `<dir>/training.log`), writes checkpoints under `<dir>/checkpoints/` and the
 * adapter into `<dir>`, and reports success only through exit code 0.
 */

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

const time = z.number().optional(); // unix seconds, float

/** One line of `progress.jsonl`. `epoch` is fractional epochs completed, as Hugging Face counts. */
export const progressEventSchema = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("started"),
    time,
    total_epochs: z.number(),
    total_steps: z.number(),
    resumed_from_step: z.number().optional(),
  }),
  z.object({
    event: z.literal("progress"),
    time,
    epoch: z.number(),
    total_epochs: z.number(),
    step: z.number(),
    total_steps: z.number(),
    loss: z.number().optional(),
    learning_rate: z.number().optional(),
    grad_norm: z.number().optional(),
    tokens_per_second: z.number().optional(),
  }),
  z.object({
    event: z.literal("eval"),
    time,
    epoch: z.number().optional(),
    step: z.number(),
    eval_loss: z.number(),
  }),
  z.object({
    event: z.literal("checkpoint"),
    time,
    step: z.number(),
    /** relative to the task folder, e.g. "checkpoints/step-100" */
    path: z.string(),
  }),
  z.object({
    event: z.literal("completed"),
    time,
    step: z.number(),
    train_loss: z.number().optional(),
    eval_loss_base: z.number().optional(),
    eval_loss_adapter: z.number().optional(),
    runtime_s: z.number().optional(),
  }),
  z.object({
    event: z.literal("stopped"),
    time,
    step: z.number(),
    reason: z.string(),
  }),
]);
export type ProgressEvent = z.infer<typeof progressEventSchema>;
