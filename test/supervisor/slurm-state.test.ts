import { describe, expect, it } from "vitest";
import {
  classifyFailure,
  endBeforeRunner,
  endWithoutRunner,
  normalizeState,
  parseExitCode,
  parseSacct,
  parseSbatchParsable,
  parseSqueue,
  phaseOf,
  probeStateOf,
  SLURM_JOB_STATES,
} from "../../src/server/supervisor/slurm-state";

describe("Slurm job states", () => {
  const expected: Record<string, ReturnType<typeof probeStateOf>> = {
    PENDING: "running",
    CONFIGURING: "running",
    POWER_UP_NODE: "running",
    RUNNING: "running",
    RESIZING: "running",
    COMPLETING: "running",
    SIGNALING: "running",
    STAGE_OUT: "running",
    UPDATE_DB: "running",
    REQUEUED: "running",
    REQUEUE_FED: "running",
    REQUEUE_HOLD: "running",
    RESV_DEL_HOLD: "running",
    SUSPENDED: "paused",
    STOPPED: "paused",
    COMPLETED: "exited",
    FAILED: "exited",
    CANCELLED: "exited",
    TIMEOUT: "exited",
    OUT_OF_MEMORY: "exited",
    DEADLINE: "exited",
    SPECIAL_EXIT: "exited",
    REVOKED: "exited",
    NODE_FAIL: "other-boot",
    BOOT_FAIL: "other-boot",
    PREEMPTED: "other-boot",
  };

  it.each(Object.entries(expected))("%s probes as %s", (state, probe) => {
    expect(probeStateOf(state)).toBe(probe);
  });

  it("the table and this test name the same states", () => {
    expect(Object.keys(SLURM_JOB_STATES).sort()).toEqual(Object.keys(expected).sort());
  });

  it("a state this Slurm does not know yet keeps the job watched, never declared dead", () => {
    expect(phaseOf("SOME_FUTURE_STATE")).toBe("active");
    expect(probeStateOf("SOME_FUTURE_STATE")).toBe("running");
  });

  it.each([
    ["CANCELLED by 1000", "CANCELLED"],
    ["CANCELLED+", "CANCELLED"],
    [" running\n", "RUNNING"],
    ["OUT_OF_MEMORY", "OUT_OF_MEMORY"],
  ])("normalizes %j to %s", (raw, state) => {
    expect(normalizeState(raw)).toBe(state);
  });
});

describe("sbatch --parsable", () => {
  it("reads a job id, with or without a cluster", () => {
    expect(parseSbatchParsable("1234\n")).toEqual({ jobId: "1234", cluster: null });
    expect(parseSbatchParsable("77;gpu-cluster\n")).toEqual({
      jobId: "77",
      cluster: "gpu-cluster",
    });
  });

  it("refuses anything else, saying what it got", () => {
    expect(() => parseSbatchParsable("")).toThrow(/did not print a job id/);
    expect(() => parseSbatchParsable("Submitted batch job 12")).toThrow(/Submitted batch job 12/);
  });
});

describe("ExitCode", () => {
  it.each([
    ["0:0", { code: 0, signal: 0 }],
    ["3:0", { code: 3, signal: 0 }],
    ["0:9", { code: 0, signal: 9 }],
    ["0:15 ", { code: 0, signal: 15 }],
  ])("%s", (raw, parsed) => {
    expect(parseExitCode(raw)).toEqual(parsed);
  });

  it("is null when not Slurm's format", () => {
    expect(parseExitCode("")).toBeNull();
    expect(parseExitCode("3")).toBeNull();
  });
});

describe("squeue output", () => {
  it("finds the job's line (recorded from squeue --states=all --format=%i|%T|%N|%j|%r)", () => {
    const out = "41|RUNNING|vm|studio-a-a1|None\n42|PENDING||studio-b-a1|Resources\n";
    expect(parseSqueue(out, "42")).toEqual({
      jobId: "42",
      state: "PENDING",
      node: null,
      name: "studio-b-a1",
      reason: "Resources",
      exitCode: null,
    });
    expect(parseSqueue(out, "41")).toMatchObject({ node: "vm", name: "studio-a-a1" });
    expect(parseSqueue(out, "4")).toBeNull();
    expect(parseSqueue("", "42")).toBeNull();
  });

  it("keeps a reason that itself contains the separator", () => {
    expect(parseSqueue("7|FAILED|n1|j|a|b\n", "7")?.reason).toBe("a|b");
  });

  it("a missing reason is null", () => {
    expect(parseSqueue("7|COMPLETED|n1|j|\n", "7")?.reason).toBeNull();
  });
});

describe("sacct output", () => {
  it("reads state and exit code (recorded from sacct -n -P -X -o JobID,State,ExitCode,NodeList,JobName)", () => {
    expect(parseSacct("7|FAILED|3:0|node-3|studio-t-a2\n", "7")).toEqual({
      jobId: "7",
      state: "FAILED",
      node: "node-3",
      name: "studio-t-a2",
      reason: null,
      exitCode: { code: 3, signal: 0 },
    });
    expect(parseSacct("9|CANCELLED by 0|0:9|None assigned|x\n", "9")).toMatchObject({
      state: "CANCELLED",
      node: null,
    });
  });

  it("takes the newest row when a job id appears twice", () => {
    expect(parseSacct("5|COMPLETED|0:0\n5|RUNNING|0:0\n", "5")?.state).toBe("RUNNING");
  });

  it("ignores steps and other jobs", () => {
    expect(parseSacct("5.batch|COMPLETED|0:0\n55|FAILED|1:0\n", "5")).toBeNull();
  });
});

describe("command failures", () => {
  it.each([
    ["slurm_load_jobs error: Invalid job id specified", "unknown-job"],
    ["scontrol: error: Job id 99 not found", "unknown-job"],
    ["Slurm accounting storage is disabled", "accounting-disabled"],
    [
      "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
      "controller-unreachable",
    ],
    ["error: Socket timed out on send/recv operation", "controller-unreachable"],
    ["Connection refused", "controller-unreachable"],
    ["Access/permission denied", "permission-denied"],
    ["scontrol: error: Operation not permitted", "permission-denied"],
    ["something else entirely", "other"],
  ] as const)("%s → %s", (stderr, kind) => {
    expect(classifyFailure(stderr)).toBe(kind);
  });
});

describe("a job that ended before its runner recorded an exit", () => {
  const record = (state: string, exit: string | null = null) => ({
    jobId: "1",
    state,
    node: "n1",
    name: "studio-t-a1",
    reason: null,
    exitCode: exit ? parseExitCode(exit) : null,
  });

  it.each(["RUNNING", "SUSPENDED", "PENDING", "COMPLETING"])("%s: not over, nothing", (state) => {
    expect(endWithoutRunner(record(state))).toBeNull();
  });

  it.each(["COMPLETED", "FAILED", "SPECIAL_EXIT"])(
    "%s: ended on its own, the runner's record decides",
    (state) => {
      expect(endWithoutRunner(record(state, "1:0"))).toBeNull();
    },
  );

  it.each(["NODE_FAIL", "BOOT_FAIL", "PREEMPTED"])(
    "%s: node lost, resumable, not an outcome",
    (state) => {
      expect(endWithoutRunner(record(state))).toBeNull();
    },
  );

  it("says what Slurm did, with the signal when there was one", () => {
    expect(endWithoutRunner(record("TIMEOUT", "0:15"))).toEqual({
      exitCode: null,
      signal: "SIGTERM",
      error: "the Slurm job reached its time limit (TIMEOUT) before the runner recorded an exit",
    });
    expect(endWithoutRunner(record("CANCELLED by 0", "0:0"))).toEqual({
      exitCode: null,
      signal: null,
      error: "the Slurm job was cancelled (scancel) (CANCELLED) before the runner recorded an exit",
    });
    expect(endWithoutRunner(record("OUT_OF_MEMORY", "0:9"))?.signal).toBe("SIGKILL");
    expect(endWithoutRunner(record("DEADLINE", "2:0"))).toMatchObject({
      exitCode: 2,
      signal: null,
    });
    expect(endWithoutRunner(record("REVOKED"))?.error).toMatch(/federated/);
  });

  it("names a signal Node does not know by number", () => {
    expect(endWithoutRunner(record("CANCELLED", "0:200"))?.signal).toBe("signal 200");
  });
});

describe("a job that ended before any runner ran", () => {
  const record = (state: string, exit: string | null, reason: string | null = null) => ({
    jobId: "1",
    state,
    node: null,
    name: "studio-t-a1",
    reason,
    exitCode: exit ? parseExitCode(exit) : null,
  });

  it.each(["PENDING", "RUNNING", "SUSPENDED", "NODE_FAIL", "BOOT_FAIL", "PREEMPTED"])(
    "%s: no outcome from Slurm",
    (state) => {
      expect(endBeforeRunner(record(state, "0:0"))).toBeNull();
    },
  );

  it("cancelled while queued: no exit code, no signal, says so", () => {
    expect(endBeforeRunner(record("CANCELLED by 0", "0:0"))).toEqual({
      exitCode: null,
      signal: null,
      error: "the Slurm job was cancelled before it started",
    });
  });

  it("failed on its node (the batch script could not run): Slurm's code and reason", () => {
    expect(endBeforeRunner(record("FAILED", "127:0", "NonZeroExitCode"))).toEqual({
      exitCode: 127,
      signal: null,
      error:
        "the Slurm job ended (FAILED: NonZeroExitCode) before its runner started; see its slurm-attempt-*.out",
    });
    expect(endBeforeRunner(record("TIMEOUT", "0:9"))?.signal).toBe("SIGKILL");
  });
});
