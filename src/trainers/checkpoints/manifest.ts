import { z } from "zod";
import type { CheckpointSizes } from "./disk-forecast";

/**
 * `manifest.json`, written last into every checkpoint folder: what the checkpoint holds (each
 * file with its size and sha256), its step and the eval loss measured on its weights. Both
 * trainers write it through this module (the Python trainer through the checkpoint tool), so
 * there is one format and one judgement of it.
 *
 * Version 1 is the first format. A checkpoint without a manifest was written by a release from
 * before manifests: it is accepted as it always was (it still has to load).
 */

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_VERSION = 1;
/** A manifest is small; anything larger is not one of ours. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** A file inside the checkpoint folder: relative, "/"-separated, no "..", no NUL. */
const relativeFile = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith("/"), "must be relative")
  .refine((p) => !p.split("/").some((part) => part === ".." || part === "." || part === ""), {
    message: 'must not contain "..", "." or empty parts',
  })
  .refine((p) => !p.includes("\0") && !p.includes("\\"), "must not contain NUL or backslashes")
  .refine((p) => p !== MANIFEST_FILE, "the manifest does not list itself");

export const manifestFileSchema = z.object({
  path: relativeFile,
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lowercase hex digits"),
});
export type ManifestFile = z.infer<typeof manifestFileSchema>;

export const checkpointManifestSchema = z.object({
  version: z.literal(MANIFEST_VERSION),
  step: z.number().int().min(0),
  /** The eval loss of exactly these weights (an evaluation at this step), else null. */
  evalLoss: z.number().nullable(),
  trainer: z.string().min(1).max(64),
  /** ISO 8601. */
  createdAt: z.string().min(1).max(64),
  files: z
    .array(manifestFileSchema)
    .min(1)
    .refine((files) => new Set(files.map((f) => f.path)).size === files.length, {
      message: "lists a file twice",
    }),
});
export type CheckpointManifest = z.infer<typeof checkpointManifestSchema>;

/** What was found where the manifest should be. */
export type ManifestSource =
  | { kind: "missing" }
  | { kind: "unreadable"; problem: string }
  | { kind: "text"; text: string };

export type ManifestReading =
  | { kind: "manifest"; manifest: CheckpointManifest }
  /** No manifest: a checkpoint from a release before manifests. */
  | { kind: "legacy" }
  | { kind: "invalid"; reason: string };

/** Reads a manifest's text; `expectedStep` is the step the folder's name says. */
export function readManifest(source: ManifestSource, expectedStep: number | null): ManifestReading {
  if (source.kind === "missing") return { kind: "legacy" };
  if (source.kind === "unreadable") {
    return { kind: "invalid", reason: `${MANIFEST_FILE} cannot be read (${source.problem})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(source.text);
  } catch {
    return { kind: "invalid", reason: `${MANIFEST_FILE} is not JSON (cut short?)` };
  }
  const version = (value as { version?: unknown } | null)?.version;
  if (typeof version === "number" && Number.isInteger(version) && version > MANIFEST_VERSION) {
    return {
      kind: "invalid",
      reason: `${MANIFEST_FILE} is version ${version}, from a newer release (this one reads version ${MANIFEST_VERSION})`,
    };
  }
  const parsed = checkpointManifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    return { kind: "invalid", reason: `${MANIFEST_FILE}: ${where}${issue?.message ?? "invalid"}` };
  }
  if (expectedStep !== null && parsed.data.step !== expectedStep) {
    return {
      kind: "invalid",
      reason: `${MANIFEST_FILE} is for step ${parsed.data.step}, the folder for step ${expectedStep}`,
    };
  }
  return { kind: "manifest", manifest: parsed.data };
}

/**
 * One listed file as found on disk. `sha256` is null when it was not computed: a file of the
 * wrong size is not worth reading.
 */
export type FileObservation =
  | { kind: "missing" }
  | { kind: "unreadable"; problem: string }
  | { kind: "present"; size: number; sha256: string | null };

export type ManifestVerdict = { ok: true } | { ok: false; reason: string };

/** The most problems one verdict names: the first few say enough. */
const MAX_PROBLEMS = 3;

/** Whether the files on disk are the ones the manifest lists, byte for byte. */
export function judgeFiles(
  manifest: CheckpointManifest,
  observed: ReadonlyMap<string, FileObservation>,
): ManifestVerdict {
  const problems: string[] = [];
  for (const file of manifest.files) {
    const seen = observed.get(file.path) ?? { kind: "missing" };
    if (seen.kind === "missing") problems.push(`${file.path} is missing`);
    else if (seen.kind === "unreadable") {
      problems.push(`${file.path} cannot be read (${seen.problem})`);
    } else if (seen.size !== file.size) {
      problems.push(`${file.path} is ${seen.size} bytes, the manifest says ${file.size}`);
    } else if (seen.sha256 === null) {
      problems.push(`${file.path} was not hashed`);
    } else if (seen.sha256 !== file.sha256) {
      problems.push(`${file.path} does not match its sha256 in the manifest`);
    }
  }
  if (problems.length === 0) return { ok: true };
  const shown = problems.slice(0, MAX_PROBLEMS);
  const more = problems.length - shown.length;
  return { ok: false, reason: shown.join("; ") + (more > 0 ? `; and ${more} more` : "") };
}

/** A checkpoint's sizes from its manifest; `finalFiles` are those the finished run writes again. */
export function manifestSizes(
  manifest: CheckpointManifest,
  finalFiles: readonly string[],
): CheckpointSizes {
  const final = manifest.files.filter((f) => finalFiles.includes(f.path));
  const sum = (files: ManifestFile[]) => files.reduce((n, f) => n + f.size, 0);
  return {
    checkpointBytes: sum(manifest.files),
    // The manifest itself is one more file (a few hundred bytes: its block counts, not its size).
    checkpointFiles: manifest.files.length + 1,
    finalBytes: sum(final),
    finalFiles: final.length,
  };
}
