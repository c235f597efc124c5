import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { getPriority, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readExitRecord } from "../../src/runner/record-schemas";
import type { ResourceLimits } from "../../src/runner/resource-limits";
import { LocalExecutor } from "../../src/server/supervisor/local-executor";
import { TestStudio } from "../helpers/studio";
import { isAlive, waitFor } from "../helpers/wait";

/**
 * Resource limits, applied by the runner through the machine's real control groups (as root,
 * cgroup v1 here, v2 where the machine has its controllers) and its own clock.
 */
const python = process.env.STUDIO_PYTHON || "python3";
const executor = new LocalExecutor();
const GROUPS = "/sys/fs/cgroup";
/** Allocates and touches 400 MB, a page at a time, then says so. */
const HOG =
  "x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'a' * len(x[::4096])\nprint('allocated', flush=True)";

describe("resource limits, held by the runner", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const taskDir = () => {
    const d = mkdtempSync(join(tmpdir(), "limits-"));
    dirs.push(d);
    return d;
  };
  /** Python running `code` as attempt 1 in `dir`, held to `limits`. */
  const startPython = (dir: string, code: string, limits: ResourceLimits, env = {}) =>
    executor.start({
      taskDir: dir,
      attempt: 1,
      command: { file: python, args: ["-c", code], env: { PATH: process.env.PATH ?? "", ...env } },
      limits,
    });

  it("runs the trainer in CPU and memory groups of its own at its priority, and removes them after", async () => {
    const dir = taskDir();
    const handle = await startPython(dir, "import time; time.sleep(30)", {
      memoryMb: 128,
      cpus: 0.5,
      nice: 7,
    });
    const name = `${dir.split("/").pop()}-a1`;
    const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, "utf8");
    // The trainer joins its groups first thing, before it execs the real program: wait for
    // Python itself (until then the process is the runner's fork, then the joining shell).
    await waitFor("the trainer to exec", () =>
      basename(readlinkSync(`/proc/${handle.trainer.pid}/exe`)).startsWith("python"),
    );
    expect(cgroupOf(handle.trainer.pid)).toMatch(
      new RegExp(`memory:/finetune-studio/${name}$`, "m"),
    );
    expect(cgroupOf(handle.trainer.pid)).toMatch(
      new RegExp(`cpu(,cpuacct|acct,cpu)?:/finetune-studio/${name}$`, "m"),
    );
    expect(
      readFileSync(`${GROUPS}/memory/finetune-studio/${name}/memory.limit_in_bytes`, "utf8").trim(),
    ).toBe(String(128 * 1024 * 1024));
    expect(
      readFileSync(`${GROUPS}/cpu/finetune-studio/${name}/cpu.cfs_quota_us`, "utf8").trim(),
    ).toBe("50000");
    expect(getPriority(handle.trainer.pid)).toBe(7);
    // The runner is not in them: an out-of-memory kill can only take the trainer.
    expect(cgroupOf(handle.runner.pid)).not.toContain(name);

    process.kill(-handle.trainer.pid, "SIGKILL");
    const exit = await waitFor("exit.json", () => readExitRecord(dir, 1));
    expect(exit.memory).toMatchObject({ limitBytes: 128 * 1024 * 1024, oomKills: 0 });
    // Removed once the killed trainer has left them (the kernel takes a moment after the reap).
    await waitFor(
      "the groups to be removed",
      () =>
        !existsSync(`${GROUPS}/memory/finetune-studio/${name}`) &&
        !existsSync(`${GROUPS}/cpu/finetune-studio/${name}`),
      10_000,
      50,
    );
  });

  it("stops the trainer at its maximum run time and says so in exit.json", async () => {
    const dir = taskDir();
    const handle = await startPython(dir, "import time; time.sleep(60)", { maxRunSeconds: 1 });
    const exit = await waitFor("exit.json", () => readExitRecord(dir, 1), 20_000);
    expect(exit).toMatchObject({ signal: "SIGTERM", stoppedBy: "max-run-time" });
    expect(isAlive(handle.trainer.pid)).toBe(false);
  });

  it("refuses to start a trainer whose limit this machine cannot hold, naming why", async () => {
    const dir = taskDir();
    const nowhere = mkdtempSync(join(tmpdir(), "no-cgroups-"));
    dirs.push(nowhere);
    const start = startPython(
      dir,
      "print('ran')",
      { memoryMb: 64 },
      { STUDIO_CGROUP_ROOT: nowhere },
    );
    await expect(start).rejects.toThrow(
      "cannot apply the resource limits: this machine has no memory control group to hold the limit to",
    );
    expect(readFileSync(join(dir, "training.log"), "utf8")).not.toContain("ran");
    expect(readdirSync(nowhere)).toEqual([]);
  });
});

describe("a task over its memory limit, through the studio", () => {
  let studio: TestStudio;
  afterAll(async () => {
    await studio?.dispose();
  });

  it("fails saying the kernel killed it at its memory limit", async () => {
    studio = await TestStudio.create("pglite", { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
    await studio.start();
    const task = await studio.client.task.create.mutate({
      name: "hog",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: [python, "-c", HOG],
      limits: { memoryMb: 64 },
    });
    await studio.client.task.start.mutate({ id: task.id });
    const failed = await waitFor("the failure", async () => {
      const d = await studio.client.task.get.query({ id: task.id });
      return d.task.status === "failed" ? d : null;
    });
    expect(failed.task.statusReason).toMatch(
      /^out of memory: the kernel killed it at its 64 MB memory limit \(memory group: 1 out-of-memory kill, peak 64 MB\) \(trainer killed by SIGKILL\)$/,
    );
    expect(failed.task.limits).toEqual({ memoryMb: 64 });
    expect(readFileSync(join(studio.home, "tasks", task.id, "training.log"), "utf8")).not.toContain(
      "allocated",
    );
  });
});
