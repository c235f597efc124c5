import { join } from "node:path";
import type { MemoryEvidence } from "./resource-limits";

/**
 * The files the runner and the studio exchange through the task folder. Plain types and names
 * only: the runner stays resident for a whole training run, so it imports no validation library.
 * The studio validates what it reads with the schemas in ./record-schemas.
 *
 * Every record carries `version`. A studio reads the records of runners started by an older
 * studio (a runner outlives upgrades), so a reader accepts every version it knows: version 0 is
 * the format written before records were versioned (no `version` field).
 */

export const RUNNER_RECORD_FILE = "runner.json";
export const EXIT_RECORD_FILE = "exit.json";
export const CANCEL_REQUEST_FILE = "cancel.json";
export const TRAINING_LOG_FILE = "training.log";

/**
 * The record format this runner writes. 1: adds `version`; the runner carries out cancel.json.
 * 2: exit.json may say what the attempt's memory group saw and that the run-time limit ended it.
 */
export const RECORD_VERSION = 2;

export function runnerRecordPath(taskDir: string): string {
  return join(taskDir, RUNNER_RECORD_FILE);
}

export function exitRecordPath(taskDir: string): string {
  return join(taskDir, EXIT_RECORD_FILE);
}

export function cancelRequestPath(taskDir: string): string {
  return join(taskDir, CANCEL_REQUEST_FILE);
}

/** A process as this boot knows it: pid plus field 22 of /proc/<pid>/stat. */
export interface ProcessRef {
  pid: number;
  startTime: string;
}

/** `runner.json`: written once the trainer is running; proves which processes belong to the attempt. */
export interface RunnerRecord {
  version: number;
  attempt: number;
  bootId: string;
  runner: ProcessRef;
  /**
   * The trainer leads its own process group: its pid is the group id the studio signals (with
   * --share-group it is in the runner's group instead, which the scheduler signals).
   */
  trainer: ProcessRef;
  /** ISO 8601 */
  startedAt: string;
}

/**
 * `exit.json`: the recorded outcome of an attempt, written after the log is flushed. Absent
 * while the trainer runs, and absent for good when the runner itself was killed.
 */
export interface ExitRecord {
  version: number;
  attempt: number;
  /** The trainer's exit code, or null when a signal ended it or it never started. */
  exitCode: number | null;
  /** The signal that ended the trainer, e.g. "SIGKILL", or null. */
  signal: string | null;
  /** ISO 8601 */
  startedAt: string;
  /** ISO 8601 */
  endedAt: string;
  /** Null when the trainer could not be started. */
  trainerPid: number | null;
  /**
   * Null only in a record a cluster executor writes for a job that ended before any runner ran
   * (cancelled while queued, refused by its node).
   */
  runnerPid: number | null;
  /** Why the trainer could not be started or followed (e.g. "spawn python3 ENOENT"). */
  error?: string;
  /** With a memory limit: what the attempt's memory control group saw (version ≥ 2). */
  memory?: MemoryEvidence;
  /** Set when the runner ended the trainer itself at its maximum run time (version ≥ 2). */
  stoppedBy?: "max-run-time";
  /**
   * When the trainer failed: the bytes free to it on the task folder's disk at that moment. The
   * disk may have room again by the time anyone reads the outcome, so only the runner can say a
   * full disk was there when the trainer died (version ≥ 2; absent from older runners).
   */
  diskFreeBytes?: number;
}

/**
 * `cancel.json`: written by the studio when a person cancels an attempt. The runner (version ≥ 1)
 * carries it out on its own: SIGTERM to the trainer's group at once, SIGKILL once `graceMs` after
 * `requestedAt` have passed, so a cancel completes on time whether or not a studio is running.
 */
export interface CancelRequest {
  version: number;
  attempt: number;
  /** ISO 8601 */
  requestedAt: string;
  graceMs: number;
}
