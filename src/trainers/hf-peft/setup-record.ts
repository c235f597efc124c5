import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../../platform/atomic-write";

/**
 * `STUDIO_HOME/hf-peft.json`: the interpreter `studio setup hf-peft` prepared, which the studio
 * runs the hf-peft trainer with unless STUDIO_PYTHON names another. It also keeps the setup's
 * preflight report with its fingerprint, so a studio started afterwards imports nothing to know
 * the trainer is ready.
 */

/** 1: the first format. A record from a newer studio is refused by name. */
export const SETUP_RECORD_VERSION = 1;
export const SETUP_RECORD_FILE = "hf-peft.json";

/** A preflight report with the fingerprint it holds for (see preflight-cache.ts). */
export const preflightEntrySchema = z.object({
  result: z.object({
    ok: z.boolean(),
    problems: z.array(z.string()),
    details: z.record(z.string(), z.unknown()),
  }),
  fingerprint: z.array(z.string()),
});

export const setupRecordSchema = z.object({
  version: z.literal(SETUP_RECORD_VERSION),
  /** The environment's interpreter, absolute. */
  python: z.string().min(1),
  /** The virtual environment's folder. */
  venv: z.string().min(1),
  /** sha256 of the requirements installed (after any torch override) and the base interpreter. */
  requirementsHash: z.string().regex(/^[0-9a-f]{64}$/),
  torchRequirement: z.string(),
  setupAt: z.string(),
  /** The preflight report at setup, reused while `fingerprint` still describes the interpreter. */
  preflight: preflightEntrySchema,
});
export type SetupRecord = z.infer<typeof setupRecordSchema>;

export function setupRecordPath(home: string): string {
  return join(home, SETUP_RECORD_FILE);
}

/** The record, null when there is none, or what is wrong with it (naming the file). */
export function readSetupRecord(
  home: string,
): { record: SetupRecord } | { problem: string } | null {
  const path = setupRecordPath(home);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    return { problem: `${path} cannot be read (${(err as Error).message})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: `${path} is not JSON; run "studio setup hf-peft" again` };
  }
  const version = (value as { version?: unknown } | null)?.version;
  if (typeof version === "number" && version > SETUP_RECORD_VERSION) {
    return {
      problem: `${path} is version ${version}, from a newer studio (this one reads version ${SETUP_RECORD_VERSION})`,
    };
  }
  const parsed = setupRecordSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      problem: `${path} is not a setup record (${issue?.path.join(".") || "record"}: ${issue?.message}); run "studio setup hf-peft" again`,
    };
  }
  return { record: parsed.data };
}

export function writeSetupRecord(home: string, record: SetupRecord): void {
  writeJsonAtomic(setupRecordPath(home), record);
}

/** Which interpreter runs the hf-peft trainer, and why that one. */
export interface HfPeftPython {
  path: string;
  source: "STUDIO_PYTHON" | "setup" | "default";
  /** A setup record that is there but cannot be used. */
  recordProblem?: string;
  record?: SetupRecord;
}

/** STUDIO_PYTHON when set, else the interpreter `studio setup hf-peft` recorded, else python3. */
export function hfPeftPython(explicit: string | undefined, home: string): HfPeftPython {
  if (explicit) return { path: explicit, source: "STUDIO_PYTHON" };
  const read = readSetupRecord(home);
  if (read && "record" in read) {
    return { path: read.record.python, source: "setup", record: read.record };
  }
  return { path: "python3", source: "default", ...(read ? { recordProblem: read.problem } : {}) };
}
