import { createTaskFields, createTaskInput } from "../shared/task-input";
import {
  DEFAULT_LEARNING_RATE,
  hyperparametersSchema,
  TRAINER_KINDS,
  type TrainerKind,
  trainerKindSchema,
} from "../trainers/protocol";
import type { ValidationIssue } from "./validation-issue";

/** The inputs of the create form, in the order they appear. */
export const FORM_FIELDS = [
  "name",
  "model",
  "dataset",
  "trainer",
  "mode",
  "command",
  "epochs",
  "learningRate",
  "batchSize",
  "loraRank",
  "loraAlpha",
  "gpus",
] as const;
export type FormField = (typeof FORM_FIELDS)[number];

/** What the inputs hold: always text, as the browser gives it. */
export type TaskFormValues = Record<FormField, string>;
export type FieldErrors = Partial<Record<FormField, ValidationIssue>>;

const HYPERPARAMETER_FIELDS = [
  "epochs",
  "learningRate",
  "batchSize",
  "loraRank",
  "loraAlpha",
] as const;
type HyperparameterField = (typeof HYPERPARAMETER_FIELDS)[number];

function isHyperparameterField(field: string): field is HyperparameterField {
  return (HYPERPARAMETER_FIELDS as readonly string[]).includes(field);
}

/** The defaults come from the shared schemas, so the form and the server never disagree. */
export function defaultFormValues(): TaskFormValues {
  const hyperparameters = hyperparametersSchema.parse({});
  const { shape } = createTaskFields;
  return {
    name: "",
    model: "builtin:tiny",
    dataset: "",
    trainer: shape.trainer.parse(undefined),
    mode: shape.mode.parse(undefined),
    command: "",
    epochs: String(hyperparameters.epochs),
    learningRate: String(DEFAULT_LEARNING_RATE.builtin),
    batchSize: String(hyperparameters.batchSize),
    loraRank: String(hyperparameters.loraRank),
    loraAlpha: String(hyperparameters.loraAlpha),
    gpus: String(shape.gpus.parse(undefined)),
  };
}

/**
 * Switches the trainer. The learning rate's default depends on the trainer, so a rate still at
 * the old trainer's default follows to the new one's; a rate the person typed stays.
 */
export function withTrainer(values: TaskFormValues, trainer: TrainerKind): TaskFormValues {
  const old = trainerKindSchema.safeParse(values.trainer);
  const atOldDefault =
    old.success && values.learningRate === String(DEFAULT_LEARNING_RATE[old.data]);
  return {
    ...values,
    trainer,
    learningRate: atOldDefault ? String(DEFAULT_LEARNING_RATE[trainer]) : values.learningRate,
  };
}

export const TRAINER_OPTIONS = TRAINER_KINDS;
export const MODE_OPTIONS = createTaskFields.shape.mode.unwrap().options;

/** An empty box is not zero: NaN makes the schema say "enter a number" instead of a bound. */
function toNumber(text: string): number {
  const trimmed = text.trim();
  return trimmed === "" ? Number.NaN : Number(trimmed);
}

/** The command trainer's argv: one argument per line, so no quoting rules are needed. */
function toArgv(text: string): string[] | undefined {
  const args = text.split("\n").filter((line) => line.trim() !== "");
  return args.length > 0 ? args : undefined;
}

/** Turns the form's text into the shape `task.create` takes (not yet validated). */
export function toCreateInput(values: TaskFormValues) {
  return {
    name: values.name,
    model: values.model,
    dataset: values.dataset,
    trainer: values.trainer,
    mode: values.mode,
    command: values.trainer === "command" ? toArgv(values.command) : undefined,
    gpus: toNumber(values.gpus),
    hyperparameters: Object.fromEntries(
      HYPERPARAMETER_FIELDS.map((field) => [field, toNumber(values[field])]),
    ),
  };
}

/** The form field an issue belongs to, from its path in the create input. */
export function fieldOfPath(path: readonly PropertyKey[]): FormField | null {
  const [head, second] = path;
  if (head === "hyperparameters" && typeof second === "string" && isHyperparameterField(second)) {
    return second;
  }
  if (typeof head === "string" && (FORM_FIELDS as readonly string[]).includes(head)) {
    return head as FormField;
  }
  return null;
}

/** One issue per field (the first one: fixing it may clear the rest), plus those that fit no field. */
export function groupIssues(issues: readonly ValidationIssue[]): {
  fields: FieldErrors;
  other: ValidationIssue[];
} {
  const fields: FieldErrors = {};
  const other: ValidationIssue[] = [];
  for (const issue of issues) {
    const field = fieldOfPath(issue.path);
    if (field === null) other.push(issue);
    else fields[field] ??= issue;
  }
  return { fields, other };
}

export type FormValidation =
  | { ok: true; input: ReturnType<typeof createTaskInput.parse> }
  | { ok: false; fields: FieldErrors; other: ValidationIssue[] };

/** Validates with the very schema the server uses. */
export function validateForm(values: TaskFormValues): FormValidation {
  const parsed = createTaskInput.safeParse(toCreateInput(values));
  if (parsed.success) return { ok: true, input: parsed.data };
  return { ok: false, ...groupIssues(parsed.error.issues) };
}
