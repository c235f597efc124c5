import { describe, expect, it } from "vitest";
import type { ExitRecord } from "../../src/runner/records";
import type { AttemptHandle, ProcessState } from "../../src/server/supervisor/executor";
import {
  outcomeOfExit,
  RECORD_UNREADABLE,
  type ReconcileDecision,
  type ReconcileInput,
  RUNNER_EXIT_WINDOW_MS,
  reconcile,
  TERMINATED_UNEXPECTEDLY,
} from "../../src/server/supervisor/reconcile";

const NOW = 1_000_000;
const LAUNCH_TIMEOUT = 10_000;

const handle: AttemptHandle = {
  kind: "local",
  version: 1,
  taskDir: "/home/tasks/t1",
  attempt: 2,
  bootId: "boot-a",
  runner: { pid: 100, startTime: "5000" },
  trainer: { pid: 101, startTime: "5001" },
};

function exit(over: Partial<ExitRecord> = {}): ExitRecord {
  return {
    version: 1,
    attempt: 2,
    exitCode: 0,
    signal: null,
    startedAt: "2026-01-01T00:00:00.000Z",
    endedAt: "2026-01-01T01:00:00.000Z",
    trainerPid: 101,
    runnerPid: 100,
    ...over,
  };
}

interface Case {
  status?: ReconcileInput["status"];
  attempt?: ReconcileInput["attempt"];
  stored?: boolean;
  recovered?: boolean;
  cancel?: boolean;
  /** With cancel: the studio stopped it for this reason (a watchdog). */
  stoppedFor?: string;
  intentAgeMs?: number;
  exit?: ExitRecord | null;
  exitProblem?: string;
  handleProblem?: string;
  recoveredProblem?: string;
  unknown?: boolean;
  runner?: ProcessState;
  trainer?: ProcessState;
  hasCheckpoint?: boolean;
  autoResume?: boolean;
}

/**
 * A task caught in `training` with a stored handle, its runner and trainer alive unless told
 * (both gone by default when an outcome was recorded).
 */
function input(c: Case): ReconcileInput {
  const stored = c.stored ?? true;
  const withHandle = stored || c.recovered;
  return {
    status: c.status ?? "training",
    attempt:
      c.attempt === undefined
        ? {
            handle: stored ? handle : null,
            handleProblem: c.handleProblem ?? null,
            cancelRequested: c.cancel ?? false,
            stoppedFor: c.stoppedFor ?? null,
            intentAt: NOW - (c.intentAgeMs ?? 60_000),
          }
        : c.attempt,
    observed: {
      exit: c.exit ?? null,
      exitProblem: c.exitProblem ?? null,
      recoveredHandle: c.recovered ? handle : null,
      recoveredProblem: c.recoveredProblem ?? null,
      processes: c.unknown
        ? "unknown"
        : withHandle
          ? {
              runner: c.runner ?? (c.exit || c.exitProblem ? "gone" : "alive"),
              trainer: c.trainer ?? (c.exit || c.exitProblem ? "gone" : "alive"),
            }
          : null,
    },
    hasCheckpoint: c.hasCheckpoint ?? false,
    autoResume: c.autoResume ?? false,
    now: NOW,
    launchTimeoutMs: LAUNCH_TIMEOUT,
  };
}

const finalize = (
  status: "completed" | "failed" | "cancelled",
  reason: string,
  exitCode: number | null,
  signal: string | null,
): ReconcileDecision => ({ action: "finalize", status, reason, exitCode, signal });

const reattach = (paused: boolean, extra: Partial<ReconcileDecision> = {}): ReconcileDecision =>
  ({
    action: "reattach",
    paused,
    storeHandle: null,
    continueCancel: false,
    ...extra,
  }) as ReconcileDecision;

const lost = (seen: string, killTrainerGroup: boolean): ReconcileDecision => ({
  action: "failed-unexpectedly",
  reason: TERMINATED_UNEXPECTEDLY,
  seen,
  killTrainerGroup,
});

const unbelievable = (seen: string, killTrainerGroup: boolean): ReconcileDecision => ({
  action: "failed-unexpectedly",
  reason: RECORD_UNREADABLE,
  seen,
  killTrainerGroup,
});

const CORRUPT = 'exit.json is unreadable: not JSON (10 bytes: "CORRUPT{{{")';
/** Long before NOW: a runner still alive this long after its record is not just finishing. */
const LONG_AGO = new Date(NOW - RUNNER_EXIT_WINDOW_MS - 1).toISOString();

describe("reconcile", () => {
  const cases: [string, Case, ReconcileDecision][] = [
    // queued
    ["queued stays in the queue", { status: "queued" }, { action: "requeue" }],
    [
      "queued with an old attempt's leftovers stays in the queue",
      { status: "queued", exit: exit(), runner: "gone" },
      { action: "requeue" },
    ],

    // an outcome record is a fact
    ["exit 0 → completed", { exit: exit() }, finalize("completed", "finished", 0, null)],
    [
      "exit 3 → failed with the code",
      { exit: exit({ exitCode: 3 }) },
      finalize("failed", "trainer exited with code 3", 3, null),
    ],
    [
      "killed by a signal → failed with the signal",
      { exit: exit({ exitCode: null, signal: "SIGKILL" }) },
      finalize("failed", "trainer killed by SIGKILL", null, "SIGKILL"),
    ],
    [
      "spawn failure → failed with the error",
      { exit: exit({ exitCode: null, error: "spawn python3 ENOENT" }) },
      finalize("failed", "could not start the trainer: spawn python3 ENOENT", null, null),
    ],
    [
      "cancel asked and the trainer ended on SIGTERM → cancelled",
      { exit: exit({ exitCode: null, signal: "SIGTERM" }), cancel: true },
      finalize("cancelled", "cancelled", null, "SIGTERM"),
    ],
    [
      "cancel asked even though it finished → cancelled",
      { exit: exit(), cancel: true },
      finalize("cancelled", "cancelled", 0, null),
    ],
    [
      "exit recorded after the studio stopped it for a cause → failed for that cause",
      { exit: exit({ exitCode: 143 }), cancel: true, stoppedFor: "diverged: NaN" },
      finalize("failed", "diverged: NaN", 143, null),
    ],
    [
      "paused task whose outcome was recorded",
      { status: "paused", exit: exit({ exitCode: 1 }) },
      finalize("failed", "trainer exited with code 1", 1, null),
    ],
    [
      "the outcome recorded before a reboot still counts",
      { exit: exit(), runner: "other-boot", trainer: "other-boot" },
      finalize("completed", "finished", 0, null),
    ],
    [
      "preparing, handle never stored, outcome recorded",
      { status: "preparing", stored: false, exit: exit({ exitCode: 2 }) },
      finalize("failed", "trainer exited with code 2", 2, null),
    ],

    // an outcome record is believed only when what it speaks of is gone
    [
      "exit recorded, runner still finishing (just wrote it) → look again in a moment",
      { exit: exit(), runner: "alive", trainer: "gone" },
      { action: "await-runner" },
    ],
    [
      "exit recorded, runner still there long after → the record stands",
      { exit: exit({ endedAt: LONG_AGO }), runner: "stopped", trainer: "gone" },
      finalize("completed", "finished", 0, null),
    ],
    [
      "forged exit.json while the proven trainer runs → not believed, followed, warned",
      { exit: exit(), runner: "alive", trainer: "alive" },
      reattach(false, {
        warning:
          "exit.json says the trainer exited with code 0, but its trainer (pid 101) is still running: not believed",
      }),
    ],
    [
      "forged exit.json, a cancel asked, trainer running → the cancel is carried on too",
      { exit: exit(), runner: "alive", trainer: "alive", cancel: true },
      reattach(false, {
        continueCancel: true,
        warning:
          "exit.json says the trainer exited with code 0, but its trainer (pid 101) is still running: not believed",
      }),
    ],
    [
      "exit.json, runner gone, proven trainer alive → trainer ended by identity, failed",
      { exit: exit({ exitCode: null, signal: "SIGKILL" }), runner: "gone", trainer: "alive" },
      unbelievable(
        "exit.json says the trainer was killed by SIGKILL, but its trainer (pid 101) was still running with its runner gone; the trainer was ended",
        true,
      ),
    ],
    [
      "exit.json naming other processes → not this attempt's outcome",
      { exit: exit({ runnerPid: 7, trainerPid: 8 }) },
      unbelievable(
        "exit.json names runner pid 7 (the attempt's is 100) and trainer pid 8 (the attempt's is 101); runner gone; trainer gone",
        false,
      ),
    ],
    [
      "exit.json with no pids (a job that never ran) is not a mismatch",
      { exit: exit({ runnerPid: null, trainerPid: null, exitCode: null, error: "cancelled" }) },
      finalize("failed", "could not start the trainer: cancelled", null, null),
    ],

    // an unreadable record ends its own task, naming the file
    [
      "corrupt exit.json, runner and trainer gone → failed, naming the file",
      { exitProblem: CORRUPT },
      unbelievable(`${CORRUPT}; runner gone; trainer gone`, false),
    ],
    [
      "corrupt exit.json, runner gone, trainer alive → failed, trainer ended",
      { exitProblem: CORRUPT, trainer: "alive" },
      unbelievable(`${CORRUPT}; runner gone; trainer still running`, true),
    ],
    [
      "corrupt exit.json while the runner runs → followed; the runner's own record will come",
      { exitProblem: CORRUPT, runner: "alive", trainer: "alive" },
      reattach(false, {
        warning: `${CORRUPT}; the runner still runs, so its own record is awaited`,
      }),
    ],
    [
      "corrupt exit.json and no handle to look with",
      { status: "preparing", stored: false, exitProblem: CORRUPT },
      unbelievable(`${CORRUPT}; the attempt's processes cannot be identified`, false),
    ],
    [
      "stored handle unreadable, nothing recovered → launch failed, naming it",
      { stored: false, handleProblem: "trainer.pid: expected number" },
      {
        action: "launch-failed",
        reason:
          "the attempt's processes cannot be identified (stored handle: trainer.pid: expected number)",
      },
    ],
    [
      "runner.json unreadable while preparing → launch failed at once, naming it",
      {
        status: "preparing",
        stored: false,
        intentAgeMs: 1_000,
        recoveredProblem: "runner.json is unreadable: not JSON",
      },
      {
        action: "launch-failed",
        reason:
          "the attempt's processes cannot be identified (runner.json is unreadable: not JSON)",
      },
    ],

    // an executor that cannot answer changes nothing
    [
      "processes unknown → undecided",
      { unknown: true },
      { action: "undecided", why: "the executor could not say whether the attempt runs" },
    ],
    [
      "processes unknown but an outcome recorded → the outcome",
      { unknown: true, exit: exit({ exitCode: 4 }) },
      finalize("failed", "trainer exited with code 4", 4, null),
    ],

    // the machine restarted
    [
      "other boot, no checkpoint → interrupted, not resumable",
      { runner: "other-boot", trainer: "other-boot" },
      {
        action: "interrupted",
        reason: "the machine restarted during training",
        resumable: false,
        autoResume: false,
      },
    ],
    [
      "other boot, checkpoint → resumable",
      { runner: "other-boot", trainer: "other-boot", hasCheckpoint: true },
      {
        action: "interrupted",
        reason: "the machine restarted during training",
        resumable: true,
        autoResume: false,
      },
    ],
    [
      "other boot, checkpoint, auto-resume → resumes",
      { runner: "other-boot", trainer: "other-boot", hasCheckpoint: true, autoResume: true },
      {
        action: "interrupted",
        reason: "the machine restarted during training",
        resumable: true,
        autoResume: true,
      },
    ],
    [
      "other boot, auto-resume but no checkpoint → no auto-resume",
      { runner: "other-boot", trainer: "other-boot", autoResume: true },
      {
        action: "interrupted",
        reason: "the machine restarted during training",
        resumable: false,
        autoResume: false,
      },
    ],
    [
      "other boot while a cancel was asked → cancelled, no code invented",
      { runner: "other-boot", trainer: "other-boot", cancel: true, hasCheckpoint: true },
      finalize(
        "cancelled",
        "cancelled; the machine restarted before the trainer stopped",
        null,
        null,
      ),
    ],
    [
      "other boot while the studio was stopping it for a cause → failed for that cause",
      { runner: "other-boot", trainer: "other-boot", cancel: true, stoppedFor: "diverged: NaN" },
      finalize(
        "failed",
        "diverged: NaN; the machine restarted before the trainer stopped",
        null,
        null,
      ),
    ],
    [
      "paused at the reboot → interrupted",
      { status: "paused", runner: "other-boot", trainer: "other-boot" },
      {
        action: "interrupted",
        reason: "the machine restarted during training",
        resumable: false,
        autoResume: false,
      },
    ],

    // ours and alive
    ["training and running → re-attach", {}, reattach(false)],
    ["training but stopped → re-attach as paused", { trainer: "stopped" }, reattach(true)],
    [
      "paused and stopped → re-attach as paused",
      { status: "paused", trainer: "stopped" },
      reattach(true),
    ],
    ["paused but running → re-attach as training", { status: "paused" }, reattach(false)],
    [
      "runner alive, trainer just ended → re-attach (exit.json is coming)",
      { trainer: "gone" },
      reattach(false),
    ],
    ["runner alive, trainer a zombie → re-attach", { trainer: "zombie" }, reattach(false)],
    ["runner stopped by someone → still re-attach", { runner: "stopped" }, reattach(false)],
    [
      "cancel asked, trainer running → re-attach and carry the cancel on",
      { cancel: true },
      reattach(false, { continueCancel: true }),
    ],
    [
      "cancel asked, trainer stopped → re-attach paused and carry the cancel on",
      { cancel: true, status: "paused", trainer: "stopped" },
      reattach(true, { continueCancel: true }),
    ],
    [
      "cancel asked, trainer already ended → re-attach, nothing to signal",
      { cancel: true, trainer: "gone" },
      reattach(false),
    ],
    [
      "preparing with the handle recovered from runner.json → re-attach and store it",
      { status: "preparing", stored: false, recovered: true },
      reattach(false, { storeHandle: handle }),
    ],

    // the runner vanished without an outcome
    [
      "runner gone, trainer gone → failed unexpectedly",
      { runner: "gone", trainer: "gone" },
      lost("runner gone without recording an exit; trainer gone", false),
    ],
    [
      "runner gone, trainer alive → failed unexpectedly, kill the trainer's group",
      { runner: "gone", trainer: "alive" },
      lost("runner gone without recording an exit; trainer still running", true),
    ],
    [
      "runner gone, trainer stopped → kill the group too",
      { status: "paused", runner: "gone", trainer: "stopped" },
      lost("runner gone without recording an exit; trainer still running (stopped)", true),
    ],
    [
      "runner pid reused, trainer pid reused",
      { runner: "reused", trainer: "reused" },
      lost(
        "runner gone (its pid now belongs to another process) without recording an exit; trainer gone (its pid now belongs to another process)",
        false,
      ),
    ],
    [
      "runner a zombie, trainer a zombie",
      { runner: "zombie", trainer: "zombie" },
      lost("runner exited (zombie) without recording an exit; trainer exited (zombie)", false),
    ],
    [
      "runner gone while a cancel was asked → still reported as it was seen",
      { runner: "gone", trainer: "gone", cancel: true },
      lost("runner gone without recording an exit; trainer gone", false),
    ],
    [
      "preparing, recovered handle, runner gone, trainer alive",
      { status: "preparing", stored: false, recovered: true, runner: "gone" },
      lost("runner gone without recording an exit; trainer still running", true),
    ],

    // caught half-started
    [
      "preparing, nothing recorded, launch still within its time → wait",
      { status: "preparing", stored: false, intentAgeMs: 3_000 },
      { action: "wait", recheckAt: NOW - 3_000 + LAUNCH_TIMEOUT },
    ],
    [
      "preparing, nothing recorded, launch just timed out → launch failed",
      { status: "preparing", stored: false, intentAgeMs: LAUNCH_TIMEOUT },
      { action: "launch-failed", reason: "the launch was not confirmed within 10000 ms" },
    ],
    [
      "preparing, nothing recorded, long ago → launch failed",
      { status: "preparing", stored: false, intentAgeMs: 3_600_000 },
      { action: "launch-failed", reason: "the launch was not confirmed within 10000 ms" },
    ],
    [
      "training without any handle (inconsistent) → launch failed once its time is up",
      { status: "training", stored: false },
      { action: "launch-failed", reason: "the launch was not confirmed within 10000 ms" },
    ],
    [
      "preparing without an attempt → launch failed",
      { status: "preparing", attempt: null },
      { action: "launch-failed", reason: "the task was preparing but no attempt was recorded" },
    ],
    [
      "training without an attempt → launch failed",
      { status: "training", attempt: null },
      { action: "launch-failed", reason: "the task was training but no attempt was recorded" },
    ],
  ];

  it.each(cases)("%s", (_name, c, expected) => {
    expect(reconcile(input(c))).toEqual(expected);
  });
});

describe("outcomeOfExit", () => {
  it("prefers the cancel, then success, then the error, the signal, the code", () => {
    expect(outcomeOfExit(exit({ exitCode: 1 }), true).status).toBe("cancelled");
    expect(outcomeOfExit(exit(), false).status).toBe("completed");
    expect(outcomeOfExit(exit({ exitCode: null, error: "boom" }), false).reason).toBe(
      "could not start the trainer: boom",
    );
    expect(outcomeOfExit(exit({ exitCode: null, signal: "SIGSEGV" }), false).reason).toBe(
      "trainer killed by SIGSEGV",
    );
    expect(outcomeOfExit(exit({ exitCode: 137 }), false).reason).toBe(
      "trainer exited with code 137",
    );
  });
});
