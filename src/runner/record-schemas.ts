import { readFileSync } from "node:fs";
import { z } from "zod";
import { type ExitRecord, exitRecordPath, type RunnerRecord, runnerRecordPath } from "./records";

/** Studio-side validation of the runner's files (the runner itself never loads zod). */

const processRefSchema = z.object({
  pid: z.number().int().positive(),
  startTime: z.string().regex(/^\d+$/),
});

export const runnerRecordSchema = z.object({
  attempt: z.number().int().min(1),
  bootId: z.string().min(1),
  runner: processRefSchema,
  trainer: processRefSchema,
  startedAt: z.string(),
}) satisfies z.ZodType<RunnerRecord>;

export const exitRecordSchema = z.object({
  attempt: z.number().int().min(1),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string(),
  trainerPid: z.number().int().positive().nullable(),
  runnerPid: z.number().int().positive().nullable(),
  error: z.string().optional(),
}) satisfies z.ZodType<ExitRecord>;

/**
 * Reads a record file. Absent → null. A record of another attempt → null too: a file left by
 * an earlier attempt must never pass for this one's. Invalid content throws, loudly: the runner
 * writes atomically, so a bad file means a bug or someone else's hand.
 */
function readRecord<T extends { attempt: number }>(
  path: string,
  schema: z.ZodType<T>,
  attempt: number,
): T | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path} is not a valid record: ${parsed.error.message}`);
  return parsed.data.attempt === attempt ? parsed.data : null;
}

export function readExitRecord(taskDir: string, attempt: number): ExitRecord | null {
  return readRecord(exitRecordPath(taskDir), exitRecordSchema, attempt);
}

export function readRunnerRecord(taskDir: string, attempt: number): RunnerRecord | null {
  return readRecord(runnerRecordPath(taskDir), runnerRecordSchema, attempt);
}
