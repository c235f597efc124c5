import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { classifyFailure, type FailureEvidence } from "../../src/server/supervisor/failure-cause";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

const FAILING = join(import.meta.dirname, "../fixtures/trainers/failing.py");
const python = process.env.STUDIO_PYTHON || "python3";

/** What a real run of the failing trainer prints (stdout and stderr, as training.log gets them). */
function realOutput(fail: string, steps: number) {
  const cwd = mkdtempSync(join(tmpdir(), "failing-"));
  try {
    const run = spawnSync(python, [FAILING, "--steps", String(steps), "--fail", fail], {
      cwd,
      encoding: "utf8",
    });
    return {
      lines: `${run.stdout}${run.stderr}`.split("\n").filter(Boolean),
      exitCode: run.status,
      signal: run.signal,
    };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

const evidence = (over: Partial<FailureEvidence>): FailureEvidence => ({
  exitCode: 1,
  signal: null,
  steps: 0,
  logTail: [],
  diskFull: null,
  ...over,
});

describe("naming the cause of a failure from what a real trainer printed", () => {
  it.each([
    [
      "config",
      0,
      "config-error",
      /^configuration error before the first step: ValueError: lora_r must be a positive integer, got -1 \(trainer exited with code 1\)$/,
    ],
    [
      "data",
      0,
      "data-error",
      /^data error before the first step: json\.decoder\.JSONDecodeError: Unterminated string/,
    ],
    ["memory", 2, "out-of-memory", /^out of memory: MemoryError \(trainer exited with code 1\)$/],
    [
      "disk",
      2,
      "disk-full",
      /^disk full: OSError: \[Errno 28\] No space left on device \(trainer exited with code 1\)$/,
    ],
    [
      "bug",
      2,
      "trainer-bug",
      /^trainer error at step 2: TypeError: 'NoneType' object is not subscriptable/,
    ],
    [
      "nan",
      3,
      "diverged",
      /^diverged: the loss became NaN \(loss became nan; stopping; trainer exited with code 1\)$/,
    ],
    ["exit", 2, "exited", /^trainer exited with code 3$/],
  ])("%s", (fail, steps, cause, reason) => {
    const run = realOutput(fail, steps);
    expect(run.exitCode).not.toBe(0);
    const named = classifyFailure(
      evidence({
        exitCode: run.exitCode,
        steps: fail === "config" || fail === "data" ? 0 : steps,
        logTail: run.lines,
      }),
    );
    expect(named.cause).toBe(cause);
    expect(named.reason).toMatch(reason);
  });

  it("reads a Node error from its stack, and a SIGKILL with no memory error says so", () => {
    let output = "";
    try {
      execFileSync(process.execPath, ["-e", "const batch = null; batch.tokens;"], {
        encoding: "utf8",
        stdio: "pipe",
      });
    } catch (err) {
      output = (err as { stderr: string }).stderr;
    }
    const named = classifyFailure(evidence({ steps: 5, logTail: output.split("\n") }));
    expect(named.cause).toBe("trainer-bug");
    expect(named.reason).toMatch(
      /^trainer error at step 5: TypeError: Cannot read properties of null/,
    );

    const killed = classifyFailure(evidence({ exitCode: null, signal: "SIGKILL", steps: 5 }));
    expect(killed.cause).toBe("killed");
    expect(killed.reason).toContain("trainer killed by SIGKILL, not sent by the studio");
    expect(killed.reason).toContain("the log shows no memory error");
  });

  it("names a full disk from the free space alone, and prefers memory over what followed it", () => {
    expect(classifyFailure(evidence({ diskFull: "0 MB free on /srv/tasks" })).reason).toBe(
      "disk full: 0 MB free on /srv/tasks (trainer exited with code 1)",
    );
    // The runner saw the disk full when the trainer died, though it has room again now.
    const atExit = classifyFailure(evidence({ diskFreeAtExit: 8192 }));
    expect(atExit.cause).toBe("disk-full");
    expect(atExit.reason).toBe(
      "disk full: 8 KB free on the task folder's disk when the trainer ended (trainer exited with code 1)",
    );
    // A megabyte or more free is no evidence: the failure is the bare exit.
    expect(classifyFailure(evidence({ diskFreeAtExit: 1024 * 1024 })).cause).toBe("exited");
    expect(classifyFailure(evidence({ diskFreeAtExit: null })).cause).toBe("exited");
    // The message torch prints for a CUDA allocation failure (no GPU here to record it on).
    const cuda = classifyFailure(
      evidence({
        steps: 40,
        logTail: [
          "Traceback (most recent call last):",
          '  File "train.py", line 9, in <module>',
          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.10 GiB is free.",
        ],
      }),
    );
    expect(cuda.cause).toBe("out-of-memory");
    expect(cuda.lines).toHaveLength(1);
  });
});

describe("the studio names the cause on the task", () => {
  let studio: TestStudio;
  afterAll(async () => {
    await studio?.dispose();
  });

  it("fails each task with its cause and the evidence, and records the cause on the event", async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_CONCURRENCY: "3",
    });
    await studio.start();
    const cases = [
      ["config", 0, /^configuration error before the first step: ValueError: lora_r/],
      ["memory", 3, /^out of memory: MemoryError/],
      ["nan", 3, /^diverged: the loss became NaN/],
    ] as const;
    const ids: string[] = [];
    for (const [fail, steps] of cases) {
      const task = await studio.client.task.create.mutate({
        name: fail,
        model: "fixture",
        dataset: "sample",
        trainer: "command",
        command: [python, FAILING, "--steps", String(steps), "--fail", fail],
      });
      await studio.client.task.start.mutate({ id: task.id });
      ids.push(task.id);
    }
    for (const [i, [fail, , reason]] of cases.entries()) {
      const detail = await waitFor(`${fail} to fail`, async () => {
        const d = await studio.client.task.get.query({ id: ids[i]! });
        return d.task.status === "failed" ? d : null;
      });
      expect(detail.task.statusReason).toMatch(reason);
      const exited = detail.events.find((e) => e.type === "exited");
      expect(exited?.data).toMatchObject({
        cause:
          fail === "config" ? "config-error" : fail === "memory" ? "out-of-memory" : "diverged",
      });
    }
  }, 60_000);
});
