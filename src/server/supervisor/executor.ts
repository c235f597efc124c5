import { z } from "zod";
import type { ExitRecord } from "../../runner/records";

export { exitRecordSchema } from "../../runner/record-schemas";
export type { ExitRecord } from "../../runner/records";

/**
 * How the supervisor runs trainers, whatever runs them: the local executor (a detached runner
 * per attempt on this machine) or, later, a cluster scheduler (a Slurm job id in the handle,
 * sbatch / squeue / sacct / scancel behind these same calls).
 */

/** What to run for one attempt. The argv is data: never a shell string. */
export interface LaunchSpec {
  taskDir: string;
  attempt: number;
  command: { file: string; args: string[]; env: Record<string, string> };
}

const processRefSchema = z.object({
  pid: z.number().int().positive(),
  startTime: z.string().regex(/^\d+$/),
});

const localHandleSchema = z.object({
  kind: z.literal("local"),
  taskDir: z.string(),
  attempt: z.number().int().min(1),
  bootId: z.string(),
  runner: processRefSchema,
  /** pid = the process group the studio signals. */
  trainer: processRefSchema,
});

/** Everything needed to find an attempt's processes again after a studio restart. JSON-safe. */
export const attemptHandleSchema = z.discriminatedUnion("kind", [localHandleSchema]);
export type AttemptHandle = z.infer<typeof attemptHandleSchema>;
export type LocalAttemptHandle = z.infer<typeof localHandleSchema>;

/** Reads a handle back from storage (jsonb); throws on anything that is not one. */
export function parseAttemptHandle(value: unknown): AttemptHandle {
  return attemptHandleSchema.parse(value);
}

/**
 * An attempt as a whole:
 * running / paused (its trainer stopped by SIGSTOP), exited (outcome recorded: read it),
 * gone (its runner vanished without recording an outcome: never a success),
 * other-boot (the machine restarted since: nothing of it runs).
 */
export type AttemptState = "running" | "paused" | "exited" | "gone" | "other-boot";

/** One process of an attempt. "stopped" = alive but stopped by SIGSTOP. */
export type ProcessState = "alive" | "stopped" | "gone" | "zombie" | "reused" | "other-boot";

export type ControlSignal = "SIGTERM" | "SIGKILL" | "SIGSTOP" | "SIGCONT";

export interface Executor {
  /**
   * Launches the attempt and resolves once its processes are recorded (runner.json for the
   * local executor). Rejects with a readable message when the trainer could not be started or
   * the launch did not confirm in time.
   */
  start(spec: LaunchSpec): Promise<AttemptHandle>;
  probe(handle: AttemptHandle): Promise<AttemptState>;
  /** The runner's and the trainer's states separately, for boot reconciliation. */
  inspect(handle: AttemptHandle): Promise<{ runner: ProcessState; trainer: ProcessState }>;
  /**
   * Signals the trainer's whole process group after re-checking its identity. False when
   * nothing was sent (the process is gone or is not proven ours).
   */
  signal(handle: AttemptHandle, signal: ControlSignal): Promise<boolean>;
  /** The attempt's outcome record, or null while there is none (or only an older attempt's). */
  readOutcome(taskDir: string, attempt: number): Promise<ExitRecord | null>;
  /** The handle of an attempt caught half-started (launched, but its handle never stored). */
  recoverHandle(taskDir: string, attempt: number): Promise<AttemptHandle | null>;
  /**
   * Calls `onHint` when something in the task folder may have changed. Only a hint: events can
   * be missed, so the caller also polls. Returns a function that stops watching.
   */
  watch(taskDir: string, onHint: () => void): () => void;
}

/**
 * Gathers what boot reconciliation needs about one attempt, through any executor: its outcome
 * record, the handle the runner recorded when none was stored, and its processes' states.
 */
export async function observeAttempt(
  executor: Executor,
  taskDir: string,
  attempt: { number: number; handle: AttemptHandle | null },
): Promise<{
  exit: ExitRecord | null;
  recoveredHandle: AttemptHandle | null;
  processes: { runner: ProcessState; trainer: ProcessState } | null;
}> {
  const exit = await executor.readOutcome(taskDir, attempt.number);
  const recoveredHandle = attempt.handle
    ? null
    : await executor.recoverHandle(taskDir, attempt.number);
  const handle = attempt.handle ?? recoveredHandle;
  const processes = handle ? await executor.inspect(handle) : null;
  return { exit, recoveredHandle, processes };
}
