import { z } from "zod";
import {
  DEFAULT_LEARNING_RATE,
  hyperparametersSchema,
  trainerKindSchema,
} from "../trainers/protocol";

/** As the trainer reads them, except that the learning rate's default depends on the trainer. */
const taskHyperparameters = hyperparametersSchema
  .extend({ learningRate: z.number().gt(0).max(1).optional() })
  .partial();

/** Safe for a file name, a log line and a command line alike: no quotes, spaces or shell syntax. */
const modelRef = z
  .string()
  .trim()
  .min(1, "choose a model")
  .max(300)
  .regex(
    /^[A-Za-z0-9_./:@-]+$/,
    "a model is a hub id (org/name), a local path or builtin:tiny; letters, digits and _ . / : @ - only",
  );

/**
 * What the task's trainer is held to, each optional: memory and CPUs through control groups,
 * a maximum run time, a CPU priority. The runner applies them (they hold with no studio), and a
 * limit the machine cannot hold refuses the launch rather than being dropped.
 */
export const taskLimitsSchema = z
  .object({
    memoryMb: z.number().int().min(16, "at least 16 MB").max(16_777_216).optional(),
    cpus: z.number().min(0.01).max(1024).optional(),
    maxRunMinutes: z.number().int().min(1).max(525_600).optional(),
    nice: z.number().int().min(0).max(19).optional(),
  })
  .strict();
export type TaskLimits = z.output<typeof taskLimitsSchema>;

/** The fields of the create form, each with its bounds and default. */
export const createTaskFields = z.object({
  name: z.string().trim().min(1, "give the task a name").max(120, "at most 120 characters"),
  model: modelRef,
  trainer: trainerKindSchema.default("builtin"),
  mode: z.enum(["lora", "pretrain"]).default("lora"),
  /** A dataset id from the dataset list, or an absolute path inside an allowed dataset root. */
  dataset: z.string().trim().min(1, "choose a dataset").max(1024),
  hyperparameters: taskHyperparameters.prefault({}),
  gpus: z.number().int().min(0, "cannot be negative").max(64).default(0),
  limits: taskLimitsSchema.prefault({}),
  /** `command` trainer only: an argv array, never a shell string. */
  command: z.array(z.string().max(4096)).min(1).max(256).optional(),
  /** A stored dataset's id: held-out data every checkpoint is scored on (the evaluation set). */
  evaluationDataset: z.string().trim().min(1).max(200).optional(),
});

/** What a person fills in to create a task; shared by the page (field errors), the CLI and the router. */
export const createTaskInput = createTaskFields
  .superRefine((v, ctx) => {
    if (v.trainer === "command" && !v.command) {
      ctx.addIssue({
        code: "custom",
        path: ["command"],
        message: "a command trainer needs an argv",
      });
    }
    if (v.trainer !== "command" && v.command) {
      ctx.addIssue({
        code: "custom",
        path: ["command"],
        message: "only the command trainer takes an argv",
      });
    }
    if (v.trainer === "command" && v.evaluationDataset) {
      ctx.addIssue({
        code: "custom",
        path: ["evaluationDataset"],
        message: "a custom command's model cannot be evaluated by the studio",
      });
    }
    if (v.trainer === "builtin" && v.gpus > 0) {
      ctx.addIssue({ code: "custom", path: ["gpus"], message: "the built-in trainer runs on CPU" });
    }
    const processes = v.hyperparameters.processes ?? 1;
    if (processes > 1 && v.trainer !== "hf-peft") {
      ctx.addIssue({
        code: "custom",
        path: ["hyperparameters", "processes"],
        message: "only the hf-peft trainer runs several processes",
      });
    }
    if (processes > 1 && v.gpus > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["hyperparameters", "processes"],
        message: "with GPUs the trainer runs one process per GPU; leave processes at 1",
      });
    }
  })
  .transform((v) => ({
    ...v,
    hyperparameters: {
      ...v.hyperparameters,
      learningRate: v.hyperparameters.learningRate ?? DEFAULT_LEARNING_RATE[v.trainer],
    },
  }));
export type CreateTaskInput = z.input<typeof createTaskInput>;

export const taskIdInput = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[a-z0-9]+$/, "a task id is lowercase letters and digits"),
});
