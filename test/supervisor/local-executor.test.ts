import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readIdentity, readStat } from "../../src/platform/identity";
import { readExitRecord, readRunnerRecord } from "../../src/runner/record-schemas";
import type { LocalAttemptHandle } from "../../src/server/supervisor/executor";
import { LocalExecutor } from "../../src/server/supervisor/local-executor";
import { observeAttempt } from "../../src/server/supervisor/observe";

import { waitFor } from "../helpers/wait";

const FIXTURE = resolve("test/fixtures/trainers/lines.mjs");
const executor = new LocalExecutor();

/** Alive in the sense that matters: running or stopped, not a zombie, not someone else. */
const isAlive = (pid: number, startTime: string) => {
  const stat = readStat(pid);
  return stat !== null && stat.startTime === startTime && stat.state !== "Z" && stat.state !== "X";
};

describe("LocalExecutor", () => {
  let dir: string;
  const handles: LocalAttemptHandle[] = [];
  const strays: { pid: number; startTime: string }[] = [];

  const start = async (args: string[], attempt = 1) => {
    const handle = await executor.start({
      taskDir: dir,
      attempt,
      command: { file: process.execPath, args: [FIXTURE, ...args], env: {} },
    });
    handles.push(handle);
    return handle;
  };
  /** Starts a trainer with a grandchild in its group; returns the grandchild's identity. */
  const startWithGrandchild = async (args: string[]) => {
    const pidFile = join(dir, "grandchild.pid");
    const handle = await start(["--grandchild", pidFile, ...args]);
    const pid = Number(
      await waitFor("the condition", () => existsSync(pidFile) && readFileSync(pidFile, "utf8")),
    );
    const grandchild = readIdentity(pid)!;
    strays.push(grandchild);
    expect(readStat(pid)!.pgrp).toBe(handle.trainer.pid);
    return { handle, grandchild };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "local-executor-test-"));
  });
  afterEach(async () => {
    delete process.env.STUDIO_BOOT_ID_FILE;
    for (const h of handles.splice(0)) {
      await executor.signal(h, "SIGKILL");
      strays.push(h.runner);
    }
    for (const p of strays.splice(0))
      if (isAlive(p.pid, p.startTime)) process.kill(p.pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("stops a SIGTERM-ignoring trainer and its grandchild: SIGTERM, then SIGKILL to the group", async () => {
    const { handle, grandchild } = await startWithGrandchild(["--ignore-sigterm", "--hang"]);
    expect(await executor.signal(handle, "SIGTERM")).toBe(true);
    await waitFor("the condition", () =>
      readFileSync(join(dir, "training.log"), "utf8").includes("SIGTERM ignored"),
    );
    expect(isAlive(handle.trainer.pid, handle.trainer.startTime)).toBe(true);
    expect(isAlive(grandchild.pid, grandchild.startTime)).toBe(true);

    expect(await executor.signal(handle, "SIGKILL")).toBe(true);
    expect(await waitFor("the condition", () => readExitRecord(dir, 1))).toMatchObject({
      signal: "SIGKILL",
    });
    await waitFor("the condition", () => !isAlive(grandchild.pid, grandchild.startTime));
    expect(await executor.probe(handle)).toBe("exited");
    expect(await executor.signal(handle, "SIGKILL")).toBe(false);
  });

  it("ends what a trainer left behind in its group once the trainer exits", async () => {
    const { grandchild } = await startWithGrandchild(["--lines", "3"]);
    expect(await waitFor("the condition", () => readExitRecord(dir, 1))).toMatchObject({
      exitCode: 0,
    });
    await waitFor("the condition", () => !isAlive(grandchild.pid, grandchild.startTime), 2_000);
  });

  it("pauses with SIGSTOP and goes on with SIGCONT", async () => {
    const handle = await start(["--lines", "40", "--interval-ms", "10"]);
    await waitFor("the condition", () => statSync(join(dir, "training.log")).size > 0);
    expect(await executor.signal(handle, "SIGSTOP")).toBe(true);
    await waitFor("the condition", async () => (await executor.probe(handle)) === "paused", 2_000);
    const size = statSync(join(dir, "training.log")).size;
    await sleep(150);
    expect(statSync(join(dir, "training.log")).size).toBe(size);
    expect((await executor.inspect(handle)).trainer).toBe("stopped");

    expect(await executor.signal(handle, "SIGCONT")).toBe(true);
    await waitFor("the condition", async () => (await executor.probe(handle)) !== "paused", 2_000);
    expect(await executor.probe(handle)).toBe("running");
    expect(await waitFor("the condition", () => readExitRecord(dir, 1))).toMatchObject({
      exitCode: 0,
    });
    expect(readFileSync(join(dir, "training.log"), "utf8").trim().split("\n")).toHaveLength(40);
  });

  it("sends nothing to a process whose start time differs (a reused pid)", async () => {
    const handle = await start(["--lines", "1", "--hang"]);
    const reused: LocalAttemptHandle = {
      ...handle,
      trainer: { ...handle.trainer, startTime: String(Number(handle.trainer.startTime) + 1) },
    };
    expect(await executor.signal(reused, "SIGKILL")).toBe(false);
    expect((await executor.inspect(reused)).trainer).toBe("reused");
    await sleep(50);
    expect(isAlive(handle.trainer.pid, handle.trainer.startTime)).toBe(true);
  });

  it("after a (simulated) reboot, reads the attempt as other-boot and signals nothing", async () => {
    const handle = await start(["--lines", "1", "--hang"]);
    writeFileSync(join(dir, "boot_id"), "a-later-boot\n");
    process.env.STUDIO_BOOT_ID_FILE = join(dir, "boot_id");
    expect(await executor.probe(handle)).toBe("other-boot");
    expect(await executor.inspect(handle)).toEqual({ runner: "other-boot", trainer: "other-boot" });
    expect(await executor.signal(handle, "SIGKILL")).toBe(false);
    await sleep(50);
    expect(isAlive(handle.trainer.pid, handle.trainer.startTime)).toBe(true);
  });

  it("recovers the handle of an attempt from runner.json, and observes it for reconciliation", async () => {
    const handle = await start(["--lines", "1", "--hang"], 3);
    expect(await executor.recoverHandle(dir, 3)).toEqual(handle);
    expect(await executor.recoverHandle(dir, 2)).toBeNull();
    expect(await observeAttempt(executor, dir, { number: 3, handle: null })).toEqual({
      exit: null,
      exitProblem: null,
      recoveredHandle: handle,
      recoveredProblem: null,
      processes: { runner: "alive", trainer: "alive" },
    });
    await executor.signal(handle, "SIGKILL");
    const exit = await waitFor("the condition", () => readExitRecord(dir, 3));
    expect(await observeAttempt(executor, dir, { number: 3, handle })).toMatchObject({
      exit,
      recoveredHandle: null,
    });
  });

  it("hints when the outcome appears in the task folder", async () => {
    let hints = 0;
    const handle = await start(["--lines", "1", "--hang"]);
    const stop = executor.watch(dir, () => hints++);
    try {
      hints = 0;
      await executor.signal(handle, "SIGKILL");
      await waitFor("the condition", () => readExitRecord(dir, 1));
      await waitFor("the condition", () => hints > 0, 2_000);
    } finally {
      stop();
    }
  });

  it("abandons a launch that does not confirm in time and leaves nothing running", async () => {
    const impatient = new LocalExecutor({ launchTimeoutMs: 1 });
    await expect(
      impatient.start({
        taskDir: dir,
        attempt: 1,
        command: { file: process.execPath, args: [FIXTURE, "--hang"], env: {} },
      }),
    ).rejects.toThrow(/did not confirm the trainer within 1 ms; launch abandoned/);
    // The runner was killed while Node was still booting, before it opened the log.
    await sleep(300);
    expect(readRunnerRecord(dir, 1)).toBeNull();
    expect(existsSync(join(dir, "training.log"))).toBe(false);
  });

  it("says plainly when the runner is not built", async () => {
    const unbuilt = new LocalExecutor({ runnerPath: join(dir, "missing-runner.js") });
    await expect(
      unbuilt.start({ taskDir: dir, attempt: 1, command: { file: "true", args: [], env: {} } }),
    ).rejects.toThrow(/the runner is not built: .*missing-runner\.js is missing/);
  });
});
