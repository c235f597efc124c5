import { describe, expect, it } from "vitest";
import { trainerOf } from "../src/cli/command-trainer";
import { foregroundReason } from "../src/cli/foreground";
import { candidateHome, environOf, splitNul } from "../src/cli/studio-discovery";
import { attemptText, progressText, statusText, taskDetailText } from "../src/cli/task-text";

// The CLI's decisions and wording; cli.test.ts drives the real command against a real studio.

describe("the command trainer's argv", () => {
  it("takes the words after -- as the command, implying the command trainer", () => {
    expect(trainerOf(["python", "train.py"], { trainer: "builtin" }, true)).toBe("command");
    expect(trainerOf(["python"], { trainer: "command" }, false)).toBe("command");
    expect(trainerOf([], { trainer: "hf-peft" }, false)).toBe("hf-peft");
    expect(trainerOf([], { trainer: "builtin" }, true)).toBe("builtin");
  });

  it("refuses the command trainer without a command, a command for another trainer, and --command", () => {
    expect(() => trainerOf([], { trainer: "command" }, false)).toThrow(
      /needs a command; give the command's program and arguments after --/,
    );
    expect(() => trainerOf(["ls"], { trainer: "hf-peft" }, false)).toThrow(/not hf-peft/);
    expect(() => trainerOf(["ls"], { trainer: "builtin" }, false)).toThrow(/not builtin/);
    expect(() => trainerOf([], { trainer: "command", command: "python train.py" }, false)).toThrow(
      /--command is not an option/,
    );
  });
});

describe("task text", () => {
  it("leaves out a reason that repeats the status", () => {
    expect(statusText("cancelled", "cancelled")).toBe("cancelled");
    expect(statusText("completed", "finished")).toBe("completed");
    expect(statusText("failed", "trainer exited with code 3")).toBe(
      "failed (trainer exited with code 3)",
    );
    expect(statusText("pending", null)).toBe("pending");
  });

  it("says the percent and the step when it knows them", () => {
    expect(progressText({ percent: 42, step: 5, totalSteps: 12 })).toBe("42.0% step 5/12");
    expect(progressText({ step: 5 })).toBe("step 5");
    expect(progressText({})).toBe("-");
  });

  const attempt = {
    id: 1,
    taskId: "t1",
    number: 2,
    executor: "local",
    handle: { kind: "local", runner: { pid: 100 }, trainer: { pid: 101 } },
    pid: 101,
    processStartTime: null,
    bootId: null,
    host: "gpu1",
    gpus: ["0", "1"],
    resumeFrom: "checkpoint-40",
    logCursor: null,
    progressCursor: null,
    exitCode: null,
    signal: null,
    error: null,
    intentAt: new Date("2026-01-02T03:04:05Z"),
    startedAt: new Date("2026-01-02T03:04:06Z"),
    endedAt: null,
  };

  it("names each attempt's processes, how it ended, and what it resumed from", () => {
    expect(attemptText(attempt)).toBe(
      [
        "  #2  running  2026-01-02 03:04:06  runner pid 100, trainer pid 101 on gpu1",
        "      GPUs 0,1",
        "      resumed from checkpoint-40",
      ].join("\n"),
    );
    const ended = {
      ...attempt,
      gpus: [],
      resumeFrom: null,
      endedAt: new Date("2026-01-02T03:05:00Z"),
    };
    expect(attemptText({ ...ended, signal: "SIGKILL" })).toMatch(
      /^ {2}#2 {2}killed by SIGKILL {2}2026-01-02 03:04:06 to 2026-01-02 03:05:00 {2}runner pid 100/,
    );
    expect(attemptText({ ...ended, exitCode: 0 })).toMatch(/#2 {2}exit code 0 /);
    expect(attemptText({ ...ended, handle: null, pid: null, error: "spawn ENOENT" })).toBe(
      "  #2  did not start  2026-01-02 03:04:06 to 2026-01-02 03:05:00  no process yet on gpu1\n      error: spawn ENOENT",
    );
    expect(
      attemptText({ ...attempt, handle: { kind: "slurm", jobId: "4242" }, pid: null }),
    ).toMatch(/Slurm job 4242 on gpu1/);
  });

  it("shows a task with its command, status and every attempt", () => {
    const text = taskDetailText({
      task: {
        id: "t1",
        name: "demo",
        status: "cancelled",
        statusReason: "cancelled",
        progress: {},
        model: "fixture",
        trainer: "command",
        mode: "lora",
        command: ["python", "train.py"],
        datasetPath: "/data/d.jsonl",
        datasetFormat: "alpaca",
        hyperparameters: { epochs: 1 },
        lastCheckpoint: null,
      },
      attempts: [attempt],
      events: [],
    } as never);
    expect(text).toContain("\nstatus:     cancelled\n");
    expect(text).toContain('\ncommand:    ["python","train.py"]\n');
    expect(text).toContain("\nattempts:   1\n  #2  running");
  });
});

describe("finding the studios of this person", () => {
  const env = (pairs: Record<string, string>) =>
    environOf(Object.entries(pairs).map(([k, v]) => `${k}=${v}`));

  it("reads /proc's NUL-separated lists", () => {
    expect(splitNul("node\0dist/server.js\0")).toEqual(["node", "dist/server.js"]);
    expect(environOf(["A=1", "B=x=y", "junk", "=z"])).toEqual(
      new Map([
        ["A", "1"],
        ["B", "x=y"],
      ]),
    );
  });

  it("takes a studio program of the same HOME, with the home it resolves", () => {
    const server = ["/usr/bin/node", "/app/dist/server.js"];
    expect(
      candidateHome(server, env({ HOME: "/home/ann", STUDIO_HOME: "/data/s" }), "/", "/home/ann"),
    ).toBe("/data/s");
    expect(candidateHome(server, env({ HOME: "/home/ann" }), "/", "/home/ann/")).toBe(
      "/home/ann/.finetune-studio",
    );
    expect(
      candidateHome(server, env({ HOME: "/home/ann", STUDIO_HOME: "s" }), "/work", "/home/ann"),
    ).toBe("/work/s");
    for (const argv of [
      ["node", "/app/dist/cli.js", "start", "--foreground"],
      ["node", "/app/node_modules/.bin/studio", "start", "--foreground"],
      ["node", "--enable-source-maps", "/app/bin/studio.js", "start"],
    ]) {
      expect(
        candidateHome(argv, env({ HOME: "/home/ann" }), "/", "/home/ann"),
        argv.join(" "),
      ).toBe("/home/ann/.finetune-studio");
    }
  });

  it("leaves out other programs and other people's studios", () => {
    const server = ["node", "/app/dist/server.js"];
    expect(
      candidateHome(["node", "/app/other.js"], env({ HOME: "/home/ann" }), "/", "/home/ann"),
    ).toBeNull();
    expect(
      candidateHome(["python", "dist/server.js.bak"], env({ HOME: "/home/ann" }), "/", "/home/ann"),
    ).toBeNull();
    expect(candidateHome(server, env({ HOME: "/home/bob" }), "/", "/home/ann")).toBeNull();
    expect(candidateHome(server, env({}), "/", "/home/ann")).toBeNull();
  });
});

describe("a studio in the foreground", () => {
  it("is one started with --foreground or running in a terminal", () => {
    expect(foregroundReason(["node", "dist/cli.js", "start", "--foreground"], 0)).toBe(
      "it was started with `studio start --foreground`",
    );
    expect(foregroundReason(["node", "dist/server.js"], 34816)).toBe("it runs in a terminal");
    expect(foregroundReason(["node", "dist/server.js"], 0)).toBeNull();
  });
});
