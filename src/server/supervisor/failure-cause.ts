import type { MemoryEvidence } from "../../runner/resource-limits";

/**
 * Why a trainer failed, named from what the studio can see: the recorded exit, the steps it
 * reached, the end of its log and the free disk space. Pure: the reconciler gathers the evidence.
 * Each cause names the evidence it came from (a log line, the exit, the free space), so a person
 * can check it; with no evidence the reason is the bare exit, as before.
 */

export const FAILURE_CAUSES = [
  "out-of-memory",
  "time-limit",
  "disk-full",
  "diverged",
  "config-error",
  "data-error",
  "trainer-bug",
  "killed",
  "exited",
] as const;
export type FailureCauseKind = (typeof FAILURE_CAUSES)[number];

export interface FailureEvidence {
  exitCode: number | null;
  signal: string | null;
  /** The last step the attempt reported (0: none). */
  steps: number;
  /** The end of training.log, oldest first. */
  logTail: string[];
  /** "N MB free on <dir>" when the disk the task writes to is below the studio's floor. */
  diskFull: string | null;
  /** The bytes free on the task folder's disk when the trainer failed, as its runner saw them. */
  diskFreeAtExit?: number | null;
  /** What the attempt's memory control group saw (a memory limit was set), from exit.json. */
  memory?: MemoryEvidence | null;
  /** The runner ended it at its maximum run time. */
  stoppedBy?: "max-run-time" | null;
  /** What the trainer itself said of its failure (its "failed" progress event), if anything. */
  trainerSaid?: string | null;
}

export interface FailureCause {
  cause: FailureCauseKind;
  /** The task's reason: the cause, then what shows it. */
  reason: string;
  /** The log lines (at most a few) the cause was read from. */
  lines: string[];
}

const OUT_OF_MEMORY = [
  /CUDA out of memory/i,
  /\bOutOfMemoryError\b/,
  /^MemoryError\b/,
  /std::bad_alloc/,
  /JavaScript heap out of memory/,
  /Cannot allocate memory/,
];
const DISK_FULL = [/No space left on device/i, /\bENOSPC\b/, /Disk quota exceeded/i];
/** A loss that is not a number: "loss": nan in a log dict, loss=inf, "Loss is NaN". */
const DIVERGED = [
  /\bloss['"]?\s*[:=]\s*['"]?[-+]?(nan|inf|infinity)\b/i,
  /\bloss (is|became) (nan|inf)/i,
];
/** Exceptions that come from the data rather than the settings or the code. */
const DATA_ERRORS =
  /^(json\.decoder\.)?JSONDecodeError\b|^UnicodeDecodeError\b|^(pyarrow\.lib\.)?ArrowInvalid\b|^DatasetError\b|^(datasets\.\S+\.)?DatasetGenerationError\b/;
/** The line that names a raised exception: `ValueError: …` (Python) or `TypeError: …` (Node). */
const EXCEPTION_LINE = /^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: .*)?$/;

const clip = (line: string) => (line.length > 300 ? `${line.slice(0, 300)}…` : line);

function lastMatch(lines: string[], patterns: RegExp[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (patterns.some((p) => p.test(line))) return line;
  }
  return null;
}

/**
 * The exception a trainer died of: the last exception line after the last Python traceback
 * header, or a Node error line followed by its stack ("    at …").
 */
function raisedException(lines: string[]): string | null {
  const header = lines.findLastIndex((l) => l.startsWith("Traceback (most recent call last)"));
  if (header >= 0) {
    for (let i = lines.length - 1; i > header; i--) {
      const line = lines[i]!.trimEnd();
      if (EXCEPTION_LINE.test(line)) return line;
    }
  }
  for (let i = lines.length - 2; i >= 0; i--) {
    const line = lines[i]!.trimEnd();
    if (EXCEPTION_LINE.test(line) && /^\s+at /.test(lines[i + 1]!)) return line;
  }
  return null;
}

/** How it ended, as it was always said: exit code or signal. */
function bareExit(e: FailureEvidence): string {
  return e.signal !== null
    ? `trainer killed by ${e.signal}`
    : `trainer exited with code ${e.exitCode}`;
}

const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;
const kb = (bytes: number) => `${Math.round(bytes / 1024)} KB`;
/**
 * Less than this free when a trainer failed: the disk was full (a write of a log line, a
 * checkpoint shard or a cache file had no room). A disk with a megabyte free is not full enough
 * to blame for a failure with no other evidence.
 */
const FULL_AT_EXIT_BYTES = 1024 * 1024;

export function classifyFailure(e: FailureEvidence): FailureCause {
  const exit = bareExit(e);
  if (e.memory && e.memory.oomKills > 0) {
    const peak = e.memory.peakBytes === null ? "" : `, peak ${mb(e.memory.peakBytes)}`;
    return {
      cause: "out-of-memory",
      reason: `out of memory: the kernel killed it at its ${mb(e.memory.limitBytes)} memory limit (memory group: ${e.memory.oomKills} out-of-memory kill${e.memory.oomKills > 1 ? "s" : ""}${peak}) (${exit})`,
      lines: [],
    };
  }
  // The trainer's own account (a launcher naming the worker rank that died) beats reading its log.
  if (e.trainerSaid) {
    return {
      cause: /killed by SIG/.test(e.trainerSaid) ? "killed" : "exited",
      reason: `${exit}: ${clip(e.trainerSaid)}`,
      lines: [],
    };
  }
  if (e.stoppedBy === "max-run-time") {
    return {
      cause: "time-limit",
      reason: `stopped by the runner at its maximum run time (then ${exit})`,
      lines: [],
    };
  }
  const oom = lastMatch(e.logTail, OUT_OF_MEMORY);
  if (oom) {
    return {
      cause: "out-of-memory",
      reason: `out of memory: ${clip(oom)} (${exit})`,
      lines: [oom],
    };
  }
  const disk = lastMatch(e.logTail, DISK_FULL);
  const fullAtExit =
    e.diskFreeAtExit != null && e.diskFreeAtExit < FULL_AT_EXIT_BYTES
      ? `${kb(e.diskFreeAtExit)} free on the task folder's disk when the trainer ended`
      : null;
  if (disk || e.diskFull || fullAtExit) {
    const seen = [fullAtExit, e.diskFull, disk && clip(disk)].filter(Boolean).join("; ");
    return {
      cause: "disk-full",
      reason: `disk full: ${seen} (${exit})`,
      lines: disk ? [disk] : [],
    };
  }
  const diverged = lastMatch(e.logTail, DIVERGED);
  if (diverged) {
    return {
      cause: "diverged",
      reason: `diverged: the loss became ${/inf/i.test(diverged) ? "infinite" : "NaN"} (${clip(diverged)}; ${exit})`,
      lines: [diverged],
    };
  }
  const raised = raisedException(e.logTail);
  if (raised) {
    const cause: FailureCauseKind = DATA_ERRORS.test(raised)
      ? "data-error"
      : e.steps === 0
        ? "config-error"
        : "trainer-bug";
    const when = e.steps === 0 ? "before the first step" : `at step ${e.steps}`;
    const label =
      cause === "data-error"
        ? "data error"
        : cause === "config-error"
          ? "configuration error"
          : "trainer error";
    return {
      cause,
      reason: `${label} ${when}: ${clip(raised)} (${exit})`,
      lines: [raised],
    };
  }
  if (e.signal !== null) {
    return {
      cause: "killed",
      reason: `${exit}, not sent by the studio${e.signal === "SIGKILL" ? " (the kernel's out-of-memory killer also sends SIGKILL; the log shows no memory error)" : ""}`,
      lines: [],
    };
  }
  return { cause: "exited", reason: exit, lines: [] };
}
