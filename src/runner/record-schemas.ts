import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { z } from "zod";
import { processRefSchema } from "../platform/identity-schema";
import {
  type CancelRequest,
  cancelRequestPath,
  type ExitRecord,
  exitRecordPath,
  RECORD_VERSION,
  type RunnerRecord,
  runnerRecordPath,
} from "./records";
import { SYSTEM_SAMPLE_VERSION, type SystemSample } from "./system-sample";

/** Studio-side validation of the runner's files (the runner itself never loads zod). */

/** Version 0 records had no `version` field; a version from a newer studio is refused by name. */
const versionSchema = z.number().int().min(0).max(RECORD_VERSION).default(0);

const isoTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), "not a date");

export const runnerRecordSchema = z.object({
  version: versionSchema,
  attempt: z.number().int().min(1),
  bootId: z.string().min(1).max(128),
  runner: processRefSchema,
  trainer: processRefSchema,
  startedAt: isoTime,
}) satisfies z.ZodType<RunnerRecord, unknown>;

export const exitRecordSchema = z.object({
  version: versionSchema,
  attempt: z.number().int().min(1),
  exitCode: z.number().int().min(-2_147_483_648).max(2_147_483_647).nullable(),
  signal: z.string().min(1).max(32).nullable(),
  startedAt: isoTime,
  endedAt: isoTime,
  trainerPid: z.number().int().positive().nullable(),
  runnerPid: z.number().int().positive().nullable(),
  error: z.string().max(4096).optional(),
  memory: z
    .object({
      limitBytes: z.number().int().min(0),
      peakBytes: z.number().int().min(0).nullable(),
      oomKills: z.number().int().min(0),
    })
    .optional(),
  stoppedBy: z.literal("max-run-time").optional(),
  diskFreeBytes: z.number().int().min(0).optional(),
}) satisfies z.ZodType<ExitRecord, unknown>;

export const cancelRequestSchema = z.object({
  version: versionSchema,
  attempt: z.number().int().min(1),
  requestedAt: isoTime,
  graceMs: z.number().int().min(0),
}) satisfies z.ZodType<CancelRequest, unknown>;

/**
 * A record file exists but cannot be believed: not JSON, not the schema, a version this studio
 * does not know, or not a regular file. Names the file and what is wrong, so the task it belongs
 * to can fail with that reason while every other task goes on.
 */
export class RecordUnreadable extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${basename(file)} is unreadable: ${problem}`);
    this.name = "RecordUnreadable";
  }
}

/** Far above any real record; a bigger file is someone else's doing and is not read whole. */
const MAX_RECORD_BYTES = 64 * 1024;

/**
 * Reads a record file. Absent → null. A record of another attempt → null too: a file left by
 * an earlier attempt must never pass for this one's. Anything else that is not a valid record
 * throws RecordUnreadable.
 */
function readRecord<T extends { attempt: number }>(
  path: string,
  schema: z.ZodType<T, unknown>,
  attempt: number,
): T | null {
  let text: string;
  try {
    const buffer = readFileSync(path);
    if (buffer.length > MAX_RECORD_BYTES) {
      throw new RecordUnreadable(path, `${buffer.length} bytes, more than any record holds`);
    }
    text = buffer.toString("utf8");
  } catch (err) {
    if (err instanceof RecordUnreadable) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw new RecordUnreadable(path, `cannot be read (${code ?? (err as Error).message})`);
  }
  const parsed = parseRecord(text, schema);
  if ("problem" in parsed) throw new RecordUnreadable(path, parsed.problem);
  return parsed.record.attempt === attempt ? parsed.record : null;
}

/** A record file's text as the record, or what is wrong with it (pure). */
export function parseRecord<T>(
  text: string,
  schema: z.ZodType<T, unknown>,
): { record: T } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const shown = JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
    return { problem: `not JSON (${text.length} bytes: ${shown})` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    return { problem: `not a valid record (${where}${first?.message})` };
  }
  return { record: parsed.data };
}

export function readExitRecord(taskDir: string, attempt: number): ExitRecord | null {
  return readRecord(exitRecordPath(taskDir), exitRecordSchema, attempt);
}

export function readRunnerRecord(taskDir: string, attempt: number): RunnerRecord | null {
  return readRecord(runnerRecordPath(taskDir), runnerRecordSchema, attempt);
}

export function readCancelRequest(taskDir: string, attempt: number): CancelRequest | null {
  return readRecord(cancelRequestPath(taskDir), cancelRequestSchema, attempt);
}

const gpuSampleSchema = z.object({
  index: z.number().int().min(0),
  utilizationPercent: z.number().nullable(),
  memoryUsedMiB: z.number().nullable(),
  memoryTotalMiB: z.number().nullable(),
  powerWatts: z.number().nullable(),
});

/** One line of system.jsonl (./system-sample): a version this studio knows, sane numbers. */
export const systemSampleSchema = z.object({
  version: z.literal(SYSTEM_SAMPLE_VERSION),
  attempt: z.number().int().min(1),
  time: z.number().min(0).max(1e10),
  cpuPercent: z.number().min(0).max(1e6),
  memoryBytes: z.number().min(0),
  processes: z.number().int().min(0),
  gpus: z.array(gpuSampleSchema).max(64).optional(),
}) satisfies z.ZodType<SystemSample, unknown>;

/** A system.jsonl line as a sample, or null (garbled, half-written, from a newer studio). */
export function parseSystemSample(text: string): SystemSample | null {
  try {
    const parsed = systemSampleSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
