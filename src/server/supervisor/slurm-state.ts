import { constants } from "node:os";

/**
 * What Slurm says about a job, in the studio's terms. Pure: parses the output of `sbatch
 * --parsable`, `squeue` and `sacct`, and maps every Slurm job state to what it means for an
 * attempt. The Slurm executor runs the commands; this module decides.
 */

/** Where a job is in its life, as the supervisor needs to know it. */
export type SlurmPhase =
  /** Queued, starting, running or cleaning up: not over yet, keep watching. */
  | "active"
  /** Stopped by `scontrol suspend` (or SIGSTOP to every process): resumable. */
  | "paused"
  /** Over; the runner's exit.json (or, without it, Slurm's record) tells how. */
  | "ended"
  /** Over because the node (or the slot on it) was taken away, as a reboot would: resumable from a checkpoint. */
  | "node-lost";

/**
 * Every job state of Slurm 22.05–24.x (`squeue %T`, `sacct -o State`). A state missing here
 * (a newer Slurm) is treated as active, so the studio keeps watching rather than declaring a
 * live job dead; exit.json still ends the attempt when the runner finishes.
 */
export const SLURM_JOB_STATES: Readonly<Record<string, SlurmPhase>> = {
  PENDING: "active",
  CONFIGURING: "active",
  POWER_UP_NODE: "active",
  RUNNING: "active",
  RESIZING: "active",
  COMPLETING: "active",
  SIGNALING: "active",
  STAGE_OUT: "active",
  UPDATE_DB: "active",
  // Requeued jobs go back to PENDING; we submit with --no-requeue, but an admin may requeue.
  REQUEUED: "active",
  REQUEUE_FED: "active",
  REQUEUE_HOLD: "active",
  RESV_DEL_HOLD: "active",
  SUSPENDED: "paused",
  STOPPED: "paused",
  COMPLETED: "ended",
  FAILED: "ended",
  CANCELLED: "ended",
  TIMEOUT: "ended",
  OUT_OF_MEMORY: "ended",
  DEADLINE: "ended",
  SPECIAL_EXIT: "ended",
  REVOKED: "ended",
  NODE_FAIL: "node-lost",
  BOOT_FAIL: "node-lost",
  PREEMPTED: "node-lost",
};

/** `CANCELLED by 1000`, `CANCELLED+` (truncated column) and `running` all name one state. */
export function normalizeState(raw: string): string {
  return (raw.trim().split(/\s+/)[0] ?? "").replace(/\+$/, "").toUpperCase();
}

export function phaseOf(state: string): SlurmPhase {
  return SLURM_JOB_STATES[normalizeState(state)] ?? "active";
}

/** The executor's probe answer for a job in this state. */
export function probeStateOf(state: string): "running" | "paused" | "exited" | "other-boot" {
  const phase = phaseOf(state);
  if (phase === "active") return "running";
  if (phase === "paused") return "paused";
  if (phase === "node-lost") return "other-boot";
  return "exited";
}

/** `sbatch --parsable` prints `<jobid>` or `<jobid>;<cluster>`. */
export function parseSbatchParsable(stdout: string): { jobId: string; cluster: string | null } {
  const line = stdout.trim().split("\n").pop()?.trim() ?? "";
  const match = /^(\d+)(?:;(\S+))?$/.exec(line);
  if (!match) throw new Error(`sbatch did not print a job id: ${JSON.stringify(stdout.trim())}`);
  return { jobId: match[1]!, cluster: match[2] ?? null };
}

/** `ExitCode` as Slurm writes it: `<exit code>:<signal number>`. */
export function parseExitCode(raw: string): { code: number; signal: number } | null {
  const match = /^(\d+):(\d+)$/.exec(raw.trim());
  return match ? { code: Number(match[1]), signal: Number(match[2]) } : null;
}

export interface SlurmJobRecord {
  jobId: string;
  state: string;
  /** The node(s) it runs or ran on; null while queued. */
  node: string | null;
  /** The job's name: the executor's check that a job id still names the attempt's job. */
  name: string | null;
  /** squeue's reason (why pending, why it failed); null from sacct. */
  reason: string | null;
  /** From sacct only; squeue does not report it. */
  exitCode: { code: number; signal: number } | null;
}

/** The format string that makes `squeue` output what parseSqueue reads (the reason last: it may hold '|'). */
export const SQUEUE_FORMAT = "%i|%T|%N|%j|%r";

/** Slurm's words for "no node yet". */
function nodeOf(raw: string | undefined): string | null {
  const node = raw?.trim() ?? "";
  return node === "" || /^none/i.test(node) || node === "(null)" ? null : node;
}

/** Reads `squeue --noheader --states=all --jobs=<id> --format=SQUEUE_FORMAT`. */
export function parseSqueue(stdout: string, jobId: string): SlurmJobRecord | null {
  for (const line of stdout.split("\n")) {
    const [id, state, node, name, ...reason] = line.trim().split("|");
    if (id === jobId && state) {
      return {
        jobId,
        state: normalizeState(state),
        node: nodeOf(node),
        name: name || null,
        reason: reason.join("|") || null,
        exitCode: null,
      };
    }
  }
  return null;
}

/** The fields that make `sacct` output what parseSacct reads. */
export const SACCT_FIELDS = "JobID,State,ExitCode,NodeList,JobName";

/**
 * Reads `sacct --noheader --parsable2 --allocations --jobs=<id> --format=SACCT_FIELDS`. A
 * job id reused after a controller reset appears more than once; the last row is the newest.
 */
export function parseSacct(stdout: string, jobId: string): SlurmJobRecord | null {
  let found: SlurmJobRecord | null = null;
  for (const line of stdout.split("\n")) {
    const [id, state, exitCode, node, name] = line.trim().split("|");
    if (id === jobId && state) {
      found = {
        jobId,
        state: normalizeState(state),
        node: nodeOf(node),
        name: name || null,
        reason: null,
        exitCode: exitCode ? parseExitCode(exitCode) : null,
      };
    }
  }
  return found;
}

/** Why a Slurm command failed, from its stderr: the difference between "no such job" and "cannot tell". */
export type SlurmCommandFailure =
  | "unknown-job"
  | "controller-unreachable"
  | "accounting-disabled"
  | "permission-denied"
  | "other";

export function classifyFailure(stderr: string): SlurmCommandFailure {
  const text = stderr.toLowerCase();
  if (/invalid job id|job id .* not found|unknown job/.test(text)) return "unknown-job";
  if (/accounting storage is disabled/.test(text)) return "accounting-disabled";
  if (/access.?denied|permission denied|not authorized|operation not permitted/.test(text)) {
    return "permission-denied";
  }
  if (
    /unable to contact slurm controller|did not answer within|socket timed out|connection refused|communications connection failure|zero bytes were transmitted|unable to establish|slurm_persist_conn|protocol authentication error/.test(
      text,
    )
  ) {
    return "controller-unreachable";
  }
  return "other";
}

/** States in which Slurm itself ended the job, so the runner may have had no chance to write exit.json. */
const ENDED_BY_SLURM: Readonly<Record<string, string>> = {
  CANCELLED: "was cancelled (scancel)",
  TIMEOUT: "reached its time limit",
  OUT_OF_MEMORY: "ran out of memory",
  DEADLINE: "reached its deadline",
  REVOKED: "was revoked by a federated cluster",
};

/**
 * The outcome Slurm recorded for a job it ended itself (cancel's SIGKILL, the time limit, the
 * memory limit), for when the runner was killed before writing exit.json. Null otherwise: a job
 * that is not over, one that ended on its own (COMPLETED, FAILED: the runner wrote exit.json,
 * or it crashed and no one knows the trainer's outcome), and one whose node was lost (resumable,
 * like a reboot).
 */
export function endWithoutRunner(
  record: SlurmJobRecord,
): { exitCode: number | null; signal: string | null; error: string } | null {
  const state = normalizeState(record.state);
  const what = ENDED_BY_SLURM[state];
  if (!what) return null;
  const exit = record.exitCode;
  const signal = exit && exit.signal > 0 ? signalName(exit.signal) : null;
  const exitCode = exit && exit.signal === 0 && exit.code !== 0 ? exit.code : null;
  return {
    exitCode,
    signal,
    error: `the Slurm job ${what} (${state}) before the runner recorded an exit`,
  };
}

/**
 * The outcome of a job that ended before any runner ran (cancelled while queued, refused by its
 * node, its batch script unable to start): there is no exit.json and never will be. Null while
 * the job is not over, and for a lost node (that reads as a reboot).
 */
export function endBeforeRunner(
  record: SlurmJobRecord,
): { exitCode: number | null; signal: string | null; error: string } | null {
  const state = normalizeState(record.state);
  if (phaseOf(state) !== "ended") return null;
  const exit = record.exitCode;
  const why = record.reason && record.reason !== "None" ? `: ${record.reason}` : "";
  return {
    exitCode: exit && exit.signal === 0 && exit.code !== 0 ? exit.code : null,
    signal: exit && exit.signal > 0 ? signalName(exit.signal) : null,
    error:
      state === "CANCELLED"
        ? "the Slurm job was cancelled before it started"
        : `the Slurm job ended (${state}${why}) before its runner started; see its slurm-attempt-*.out`,
  };
}

function signalName(n: number): string {
  const entry = Object.entries(constants.signals).find(([, value]) => value === n);
  return entry ? entry[0] : `signal ${n}`;
}
