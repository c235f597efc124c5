import { z } from "zod";
import { datasetFormatSchema, hyperparametersSchema } from "../protocol";

/**
 * `provenance.json`, kept inside every export: what the merged model was made from, so that a
 * model file found on its own can be traced to its task, data, settings and adapter. The studio
 * states the request (it knows the task, the pinned dataset's hash and its own version); the
 * exporter adds what it measured while merging (the adapter's bytes, the files it wrote).
 */

export const PROVENANCE_FILE = "provenance.json";
/** 1: the first format. A reader refuses a newer one by name. */
export const PROVENANCE_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const exportSourceSchema = z.object({
  /** "final": the adapter the run finished with; "checkpoint": one the run kept on the way. */
  kind: z.enum(["final", "checkpoint"]),
  /** Relative to the task folder: "." for the final adapter, else e.g. "checkpoints/step-20". */
  path: z
    .string()
    .max(300)
    .regex(/^(\.|checkpoints\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)$/, 'is "." or checkpoints/<folder>'),
  /** The training step the weights are from, when known. */
  step: z.number().int().min(0).nullable(),
});
export type ExportSource = z.infer<typeof exportSourceSchema>;

/** What the studio asks the exporter for: the task as the studio knows it. */
export const exportRequestSchema = z.object({
  task: z.object({ id: z.string(), name: z.string() }),
  trainer: z.enum(["builtin", "hf-peft"]),
  mode: z.enum(["lora", "pretrain"]),
  /** As the task names it: builtin:tiny, a .safetensors path, a hub id or a local folder. */
  baseModel: z.string(),
  dataset: z.object({
    path: z.string(),
    format: datasetFormatSchema,
    /** The content hash the task's copy was pinned under; null when it could not be had. */
    sha256: sha256.nullable(),
    /** Where the hash comes from: the pinned copy's name, or the file read at export time. */
    hashedFrom: z.enum(["pinned-copy", "file-at-export", "unreadable"]),
  }),
  hyperparameters: hyperparametersSchema,
  source: exportSourceSchema,
  studioVersion: z.string(),
  /** ISO 8601 */
  requestedAt: z.string(),
});
export type ExportRequest = z.infer<typeof exportRequestSchema>;

export const exportedFileSchema = z.object({
  name: z.string(),
  size: z.number().int().min(0),
  sha256,
});
export type ExportedFile = z.infer<typeof exportedFileSchema>;

export const provenanceSchema = exportRequestSchema.extend({
  version: z.number().int().min(1),
  /** The files merged from (under the source folder): the adapter, or the trained weights. */
  mergedFrom: z.array(exportedFileSchema),
  /** Every file of the export but this one. */
  files: z.array(exportedFileSchema),
  /** ISO 8601: when the export was complete. */
  exportedAt: z.string(),
});
export type Provenance = z.infer<typeof provenanceSchema>;

/** The provenance of one export (pure). Files are listed by name, so it reads the same anywhere. */
export function provenanceOf(
  request: ExportRequest,
  mergedFrom: ExportedFile[],
  files: ExportedFile[],
  exportedAt: Date,
): Provenance {
  const byName = (a: ExportedFile, b: ExportedFile) => (a.name < b.name ? -1 : 1);
  return {
    version: PROVENANCE_VERSION,
    ...request,
    mergedFrom: [...mergedFrom].sort(byName),
    files: files.filter((f) => f.name !== PROVENANCE_FILE).sort(byName),
    exportedAt: exportedAt.toISOString(),
  };
}

/** A provenance.json as read back, or why it cannot be used (a newer format is named as such). */
export function readProvenance(text: string): Provenance {
  const value = JSON.parse(text) as { version?: unknown };
  if (typeof value.version === "number" && value.version > PROVENANCE_VERSION) {
    throw new Error(
      `provenance.json is version ${value.version}, from a newer studio; this one reads up to ${PROVENANCE_VERSION}`,
    );
  }
  return provenanceSchema.parse(value);
}

/** The weights a source folder holds for the task's mode, and the files a merge reads there. */
export function sourceFilesOf(mode: ExportRequest["mode"]): string[] {
  return mode === "pretrain"
    ? ["model.safetensors"]
    : ["adapter_config.json", "adapter_model.safetensors"];
}
