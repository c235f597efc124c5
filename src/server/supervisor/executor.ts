import { z } from "zod";
import { processRefSchema } from "../../platform/identity-schema";
import type { ExitRecord } from "../../runner/records";
import type { ResourceLimits } from "../../runner/resource-limits";

export { exitRecordSchema } from "../../runner/record-schemas";
export type { ExitRecord } from "../../runner/records";

/**
 * How the supervisor runs trainers, whatever runs them: the local executor (a detached runner
 * per attempt on this machine, ./local-executor) or Slurm (a job id in the handle, sbatch /
 * squeue / sacct / scancel behind these same calls, ./slurm-executor).
 */

/** What to run for one attempt. The argv is data: never a shell string. */
export interface LaunchSpec {
  taskDir: string;
  attempt: number;
  command: { file: string; args: string[]; env: Record<string, string> };
  /** What the trainer is held to; applied by the runner (or, on Slurm, partly by Slurm). */
  limits?: ResourceLimits;
}

/**
 * The handle format this studio writes. 0: before handles were versioned (no field); 1: the
 * runner carries out cancel.json itself (a version-0 runner leaves the grace to the studio).
 */
export const HANDLE_VERSION = 1;
const handleVersion = z.number().int().min(0).max(HANDLE_VERSION).default(0);

const localHandleSchema = z.object({
  kind: z.literal("local"),
  version: handleVersion,
  taskDir: z.string(),
  attempt: z.number().int().min(1),
  bootId: z.string(),
  runner: processRefSchema,
  /** pid = the process group the studio signals. */
  trainer: processRefSchema,
});

/** An attempt running as a Slurm batch job: the job id is its identity (see ./slurm-executor). */
const slurmHandleSchema = z.object({
  kind: z.literal("slurm"),
  version: handleVersion,
  taskDir: z.string(),
  attempt: z.number().int().min(1),
  jobId: z.string().regex(/^\d+$/),
  /** From `sbatch --parsable` on a multi-cluster setup; null otherwise. */
  cluster: z.string().nullable(),
  /** The node the job was seen running on at launch; null while it was still queued. */
  node: z.string().nullable(),
});

/** Everything needed to find an attempt's processes again after a studio restart. JSON-safe. */
export const attemptHandleSchema = z.discriminatedUnion("kind", [
  localHandleSchema,
  slurmHandleSchema,
]);
export type AttemptHandle = z.output<typeof attemptHandleSchema>;
export type LocalAttemptHandle = z.output<typeof localHandleSchema>;
export type SlurmAttemptHandle = z.output<typeof slurmHandleSchema>;
export { slurmHandleSchema };

/** What the studio records and shows about a launched attempt, whatever runs it. */
export interface HandleSummary {
  /** For messages and the page: "pid 4242", "Slurm job 17 on node-3". */
  label: string;
  /** Process identity columns of the attempt row; null where a job id is the identity. */
  pid: number | null;
  processStartTime: string | null;
  bootId: string | null;
  /** The machine it runs on, when that is not the studio's own; null when unknown. */
  host: string | null;
  /** Machine-readable facts for the "started" and "recovered" events. */
  facts: Record<string, string | number | null>;
}

export function describeHandle(handle: AttemptHandle): HandleSummary {
  if (handle.kind === "local") {
    return {
      label: `pid ${handle.trainer.pid}`,
      pid: handle.trainer.pid,
      processStartTime: handle.trainer.startTime,
      bootId: handle.bootId,
      host: null,
      facts: { pid: handle.trainer.pid, runnerPid: handle.runner.pid },
    };
  }
  return {
    label: `Slurm job ${handle.jobId}${handle.node ? ` on ${handle.node}` : " (queued)"}`,
    pid: null,
    processStartTime: null,
    bootId: null,
    host: handle.node,
    facts: { jobId: handle.jobId, node: handle.node, cluster: handle.cluster },
  };
}

/**
 * Reads a handle back from storage (jsonb): the handle, or what is wrong with it. Handles that
 * an older studio stored (version 0) read as they are.
 */
export function parseAttemptHandle(
  value: unknown,
): { handle: AttemptHandle; problem: null } | { handle: null; problem: string } {
  const parsed = attemptHandleSchema.safeParse(value);
  if (parsed.success) return { handle: parsed.data, problem: null };
  const first = parsed.error.issues[0];
  const where = first?.path.length ? `${first.path.join(".")}: ` : "";
  return { handle: null, problem: `${where}${first?.message ?? "not a handle"}` };
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

export interface CancelSpec {
  requestedAt: Date;
  graceMs: number;
}

/**
 * A file event in a task folder: the name it came with (null: not known) and "rename" when a name
 * was created, removed or moved (a record written by rename, training.log replaced).
 */
export type FolderHint = (file: string | null, kind: "rename" | "change") => void;

export interface Executor<Handle extends AttemptHandle = AttemptHandle> {
  /**
   * Launches the attempt and resolves once its processes are recorded (runner.json for the
   * local executor). Rejects with a readable message when the trainer could not be started or
   * the launch did not confirm in time.
   */
  start(spec: LaunchSpec): Promise<Handle>;
  probe(handle: Handle): Promise<AttemptState>;
  /** The runner's and the trainer's states separately, for reconciliation. */
  inspect(handle: Handle): Promise<{ runner: ProcessState; trainer: ProcessState }>;
  /**
   * Signals the trainer's whole process group after re-checking its identity. False when
   * nothing was sent (the process is gone or is not proven ours).
   */
  signal(handle: Handle, signal: ControlSignal): Promise<boolean>;
  /**
   * Asks the attempt to stop: SIGTERM now (waking it first if paused), SIGKILL once the grace
   * period after `requestedAt` is over. Where the executor can, the attempt's own runner keeps
   * the grace (`graceKeptByRunner`), so the cancel completes with no studio running; otherwise
   * the studio's watcher sends the SIGKILL. False when nothing was there to ask.
   */
  cancel(handle: Handle, request: CancelSpec): Promise<boolean>;
  /** True when the attempt's runner escalates a cancel to SIGKILL by itself (see `cancel`). */
  graceKeptByRunner(handle: Handle): boolean;
  /**
   * A cheap look at the attempt's processes, for the watcher's poll: a text that changes when
   * one of them ends, becomes a zombie or is stopped. Null when the executor has no cheap way
   * to look (the watcher then checks fully every poll).
   */
  quickLook(handle: Handle): string | null;
  /** The attempt's outcome record, or null while there is none (or only an older attempt's). */
  readOutcome(taskDir: string, attempt: number): Promise<ExitRecord | null>;
  /** The handle of an attempt caught half-started (launched, but its handle never stored). */
  recoverHandle(taskDir: string, attempt: number): Promise<Handle | null>;
  /**
   * Calls `onHint` when something in the task folder may have changed, with the file's name when
   * known. Only a hint: events can be missed, so the caller also polls. Returns a function that
   * stops watching.
   */
  watch(taskDir: string, onHint: FolderHint): () => void;
}
