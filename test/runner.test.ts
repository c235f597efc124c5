import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { probe, readStat } from "../src/platform/identity";
import { parseRunnerArgs, runnerArgv } from "../src/runner/args";
import { readExitRecord, readRunnerRecord } from "../src/runner/record-schemas";
import type { ExitRecord } from "../src/runner/records";
import type { LocalAttemptHandle } from "../src/server/supervisor/executor";
import { LocalExecutor } from "../src/server/supervisor/local-executor";

import { readSystemSamples } from "../src/server/tasks/system-samples";
import { waitFor } from "./helpers/wait";

const FIXTURE = resolve("test/fixtures/trainers/lines.mjs");
const executor = new LocalExecutor();

describe("runner arguments", () => {
  it("round-trips through runnerArgv and parseRunnerArgs", () => {
    const args = {
      taskDir: "/t/a b",
      attempt: 12,
      daemonize: true,
      shareGroup: false,
      limits: {},
      file: "/usr/bin/python3",
      args: ["--task-dir", "x", "--", "-x"],
    };
    expect(parseRunnerArgs(runnerArgv(args))).toEqual(args);
    expect(parseRunnerArgs(runnerArgv({ ...args, daemonize: false, args: [] }))).toEqual({
      ...args,
      daemonize: false,
      args: [],
    });
    const { shareGroup: _, ...withoutShareGroup } = args;
    expect(parseRunnerArgs(runnerArgv(withoutShareGroup)).shareGroup).toBe(false);
    const shared = { ...args, daemonize: false, shareGroup: true };
    expect(parseRunnerArgs(runnerArgv(shared))).toEqual(shared);
    const limited = { ...args, limits: { memoryMb: 64, cpus: 0.5, maxRunSeconds: 3600, nice: 10 } };
    expect(parseRunnerArgs(runnerArgv(limited))).toEqual(limited);
  });

  it.each([
    [[], /expected `-- <file>/],
    [["--task-dir", "/t", "--attempt", "1", "--"], /expected `-- <file>/],
    [["--attempt", "1", "--", "f"], /--task-dir is required/],
    [["--task-dir", "/t", "--", "f"], /--attempt is required/],
    [["--task-dir", "/t", "--attempt", "0", "--", "f"], /positive integer/],
    [["--task-dir", "/t", "--attempt", "1x", "--", "f"], /positive integer/],
    [["--task-dir", "/t", "--attempt", "1", "--verbose", "--", "f"], /unknown option --verbose/],
    [["--task-dir"], /expected `-- <file>/],
    [["--task-dir", "--", "f"], /--task-dir needs a value/],
    [["--task-dir", "/t", "--attempt", "1", "--daemonize", "--share-group", "--", "f"], /cannot/],
    [
      ["--task-dir", "/t", "--attempt", "1", "--memory-mb", "8", "--", "f"],
      /--memory-mb must be a number from 16/,
    ],
    [
      ["--task-dir", "/t", "--attempt", "1", "--nice", "1.5", "--", "f"],
      /--nice must be a number from 0 to 19/,
    ],
    [
      ["--task-dir", "/t", "--attempt", "1", "--cpus", "many", "--", "f"],
      /--cpus must be a number/,
    ],
  ])("rejects %j", (argv, message) => {
    expect(() => parseRunnerArgs(argv)).toThrow(message);
  });
});

describe("runner", () => {
  let dir: string;
  const handles: LocalAttemptHandle[] = [];

  const command = (args: string[]) => ({
    file: process.execPath,
    args: [FIXTURE, ...args],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  const start = async (args: string[], attempt = 1) => {
    const handle = await executor.start({ taskDir: dir, attempt, command: command(args) });
    handles.push(handle);
    return handle;
  };
  const outcome = (attempt = 1) => waitFor("the condition", () => readExitRecord(dir, attempt));
  const logLines = () => readFileSync(join(dir, "training.log"), "utf8").split("\n").slice(0, -1);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "runner-test-"));
  });
  afterEach(async () => {
    for (const h of handles.splice(0)) {
      await executor.signal(h, "SIGKILL");
      if (readStat(h.runner.pid)?.startTime === h.runner.startTime) {
        process.kill(h.runner.pid, "SIGKILL");
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("records exit 0, with every line in the log exactly once", async () => {
    const handle = await start(["--lines", "50", "--interval-ms", "1", "--task-dir", dir]);
    const exit = await outcome();
    expect(exit).toMatchObject({
      attempt: 1,
      exitCode: 0,
      signal: null,
      trainerPid: handle.trainer.pid,
      runnerPid: handle.runner.pid,
    });
    expect(exit.error).toBeUndefined();
    expect(Date.parse(exit.endedAt)).toBeGreaterThanOrEqual(Date.parse(exit.startedAt));
    expect(logLines()).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i + 1} of 50`));
    const events = readFileSync(join(dir, "progress.jsonl"), "utf8").trim().split("\n");
    expect(events).toHaveLength(52);
    expect(readRunnerRecord(dir, 1)).toMatchObject({
      bootId: handle.bootId,
      runner: handle.runner,
      trainer: handle.trainer,
    });
    // The runner writes exit.json last and then leaves (a zombie until init reaps it).
    await waitFor(
      "the condition",
      () => probe({ bootId: handle.bootId, ...handle.runner }) !== "alive",
    );
  });

  it("samples the trainer's CPU and memory, with its children, into system.jsonl", async () => {
    // A trainer that holds 120 MB and uses 0.8 s of CPU, and a child that uses as much: CPU
    // time, not wall time, so the amount is the same however loaded the machine is.
    const busy =
      "let x = 0; while (process.cpuUsage().user < 800000) for (let i = 0; i < 1e6; i++) x += i;";
    const script = `
      const { spawn } = require("node:child_process");
      spawn(process.execPath, ["-e", ${JSON.stringify(busy)}], { stdio: "ignore" });
      const held = Buffer.alloc(120 * 1024 * 1024, 1);
      ${busy}
      if (held[0] !== 1) process.exit(2);`;
    await executor.start({
      taskDir: dir,
      attempt: 1,
      command: {
        file: process.execPath,
        args: ["-e", script],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", STUDIO_SYSTEM_SAMPLE_MS: "200" },
      },
    });
    expect(await outcome()).toMatchObject({ exitCode: 0 });
    const samples = await readSystemSamples(join(dir, "system.jsonl"), 1000);
    expect(samples.length).toBeGreaterThanOrEqual(3);
    for (const sample of samples) expect(sample).toMatchObject({ version: 1, attempt: 1 });
    expect(Math.max(...samples.map((x) => x.processes))).toBe(2);
    expect(Math.max(...samples.map((x) => x.memoryBytes))).toBeGreaterThan(120e6);
    // The CPU the samples account for: most of the 1.6 s used (the start before the first
    // sample and the end after the last go uncounted), never more than was used.
    const cpuSeconds = samples.reduce(
      (sum, x, i) => sum + (x.cpuPercent / 100) * (i === 0 ? 0.2 : x.time - samples[i - 1]!.time),
      0,
    );
    expect(cpuSeconds).toBeGreaterThan(0.8);
    expect(cpuSeconds).toBeLessThan(2.5);
  });

  it("records exit 3", async () => {
    await start(["--lines", "2", "--exit-code", "3"]);
    expect(await outcome()).toMatchObject({ exitCode: 3, signal: null });
  });

  it("records a trainer killed by SIGKILL", async () => {
    const handle = await start(["--lines", "1", "--hang"]);
    expect(await executor.probe(handle)).toBe("running");
    expect(await executor.signal(handle, "SIGKILL")).toBe(true);
    expect(await outcome()).toMatchObject({ exitCode: null, signal: "SIGKILL" });
    expect(await executor.probe(handle)).toBe("exited");
  });

  it("records a trainer that cannot be started, and start() says why", async () => {
    const missing = join(dir, "no-such-trainer");
    await expect(
      executor.start({
        taskDir: dir,
        attempt: 1,
        command: { file: missing, args: [], env: {} },
      }),
    ).rejects.toThrow(/could not start the trainer: spawn .*no-such-trainer ENOENT/);
    expect(readExitRecord(dir, 1)).toMatchObject({
      exitCode: null,
      signal: null,
      trainerPid: null,
      error: expect.stringContaining("ENOENT"),
    });
    expect(readRunnerRecord(dir, 1)).toBeNull();
  });

  it("leaves no exit.json when the runner itself is killed, and the attempt reads as gone", async () => {
    const handle = await start(["--lines", "1", "--hang"]);
    process.kill(handle.runner.pid, "SIGKILL");
    await waitFor("the condition", async () => (await executor.probe(handle)) === "gone");
    expect(await executor.probe(handle)).toBe("gone");
    expect(existsSync(join(dir, "exit.json"))).toBe(false);
    // Its trainer lives on with no one to record its end: the studio's to kill.
    expect((await executor.inspect(handle)).trainer).toBe("alive");
    expect(await executor.signal(handle, "SIGKILL")).toBe(true);
  });

  it("runs outside the studio's process tree, session and group", async () => {
    const handle = await start(["--lines", "1", "--hang"]);
    const me = readStat(process.pid)!;
    const runner = readStat(handle.runner.pid)!;
    const trainer = readStat(handle.trainer.pid)!;
    expect(runner.session).not.toBe(me.session);
    expect(runner.pgrp).not.toBe(me.pgrp);
    // No ancestor of the runner is this process.
    for (let pid = runner.ppid; pid > 1; pid = readStat(pid)!.ppid) {
      expect(pid).not.toBe(process.pid);
    }
    // The trainer is the runner's child and leads its own group, apart from the runner.
    expect(trainer.ppid).toBe(handle.runner.pid);
    expect(trainer.pgrp).toBe(handle.trainer.pid);
    expect(runner.pgrp).not.toBe(trainer.pgrp);
  });

  it("outlives SIGTERM, SIGINT and SIGHUP, and still records the outcome", async () => {
    const handle = await start(["--lines", "30", "--interval-ms", "10"]);
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      process.kill(handle.runner.pid, signal);
    }
    expect(await outcome()).toMatchObject({ exitCode: 0, runnerPid: handle.runner.pid });
    expect(logLines()).toHaveLength(30);
  });

  it("never takes an earlier attempt's records for this one's", async () => {
    const old: ExitRecord = {
      version: 1,
      attempt: 1,
      exitCode: 0,
      signal: null,
      startedAt: "2026-01-01T00:00:00.000Z",
      endedAt: "2026-01-01T00:00:01.000Z",
      trainerPid: 123,
      runnerPid: 122,
    };
    writeFileSync(join(dir, "exit.json"), JSON.stringify(old));
    // Even a stale record carrying this attempt's own number is cleared before the launch.
    writeFileSync(join(dir, "exit.json"), JSON.stringify({ ...old, attempt: 2 }));
    const handle = await start(["--lines", "1", "--hang"], 2);
    expect(await executor.readOutcome(dir, 2)).toBeNull();
    expect(await executor.readOutcome(dir, 1)).toBeNull();
    expect(await executor.probe(handle)).toBe("running");
    expect(await executor.recoverHandle(dir, 1)).toBeNull();
    expect(await executor.recoverHandle(dir, 2)).toEqual(handle);
  });

  it("with --share-group keeps the trainer in its group, so a signal to that group reaches both", async () => {
    // As Slurm runs it: the runner in the foreground of a group of its own (the batch step's),
    // which scancel --signal and scontrol suspend/resume signal as a whole.
    const runnerPath = resolve("dist/runner.js");
    const argv = runnerArgv({
      taskDir: dir,
      attempt: 1,
      daemonize: false,
      shareGroup: true,
      ...command(["--lines", "100000", "--interval-ms", "20"]),
    });
    const job = spawn(process.execPath, [runnerPath, ...argv], { detached: true, stdio: "ignore" });
    const group = job.pid!;
    try {
      const record = await waitFor("the condition", () => readRunnerRecord(dir, 1));
      expect(record.runner.pid).toBe(group);
      expect(readStat(record.trainer.pid)!.pgrp).toBe(group);
      await waitFor(
        "the condition",
        () => existsSync(join(dir, "training.log")) && logLines().length > 2,
      );

      process.kill(-group, "SIGSTOP");
      await waitFor("the condition", () => readStat(record.trainer.pid)?.state === "T");
      await waitFor("the condition", () => readStat(group)?.state === "T");
      const frozen = logLines().length;
      await sleep(200);
      expect(logLines()).toHaveLength(frozen);
      process.kill(-group, "SIGCONT");
      await waitFor("the condition", () => logLines().length > frozen + 2);

      // The runner outlives SIGTERM; the trainer, which does not handle it, ends by it.
      process.kill(-group, "SIGTERM");
      expect(await outcome()).toMatchObject({
        exitCode: null,
        signal: "SIGTERM",
        trainerPid: record.trainer.pid,
        runnerPid: group,
      });
    } finally {
      try {
        process.kill(-group, "SIGKILL");
      } catch {}
    }
  });

  it("measures launch and outcome latency", async () => {
    const launches: number[] = [];
    const outcomes: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const t0 = performance.now();
      await start(["--lines", "1", "--task-dir", dir], attempt);
      launches.push(performance.now() - t0);
      const exit = await outcome(attempt);
      const events = readFileSync(join(dir, "progress.jsonl"), "utf8").trim().split("\n");
      const completedAt = JSON.parse(events.at(-1)!).time * 1000;
      outcomes.push(Date.parse(exit.endedAt) - completedAt);
    }
    const ms = (xs: number[]) => xs.map((x) => `${Math.round(x)} ms`).join(", ");
    console.log(
      `start() to handle: ${ms(launches)}; trainer's last event to the runner's endedAt: ${ms(outcomes)}`,
    );
    expect(Math.max(...launches)).toBeLessThan(5_000);
  });
});
