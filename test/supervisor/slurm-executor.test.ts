import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AttemptState, SlurmAttemptHandle } from "../../src/server/supervisor/executor";
import { SlurmExecutor } from "../../src/server/supervisor/slurm-executor";

/**
 * A real single-node Slurm cluster on this machine (scripts/slurm-cluster.sh): real sbatch,
 * squeue, scancel, scontrol and the real runner. When the cluster cannot start, beforeAll
 * fails with the script's reason: these tests never skip.
 */

const run = promisify(execFile);
const CLUSTER_SCRIPT = resolve("scripts/slurm-cluster.sh");
const TRAINER = resolve("test/fixtures/slurm/trainer.sh");
const clusterDir = join(tmpdir(), "studio-slurm-test-cluster");
const slurmConf = join(clusterDir, "slurm.conf");
const work = mkdtempSync(join(tmpdir(), "slurm-executor-"));
const executor = new SlurmExecutor({ slurmConf, partition: "studio" });
let taskCount = 0;

async function cluster(action: "start" | "stop" | "restart-controller") {
  try {
    await run(CLUSTER_SCRIPT, [action, clusterDir], { timeout: 55_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`slurm-cluster.sh ${action} failed: ${e.stderr?.trim() || e.message}`);
  }
}

function newTaskDir(name: string) {
  const dir = join(work, `${name}-${++taskCount}`);
  writeFileSync(join(work, ".keep"), "");
  return dir;
}

/** Submits the fixture trainer: <ticks of 0.1 s> <exit code> [ignore-term] [args...]. */
function submit(taskDir: string, trainerArgs: string[], attempt = 1) {
  return executor.start({
    taskDir,
    attempt,
    command: {
      file: TRAINER,
      args: trainerArgs,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    },
  });
}

async function until<T>(
  what: string,
  get: () => Promise<T> | T,
  ok: (v: T) => boolean,
  ms = 15_000,
) {
  const deadline = Date.now() + ms;
  let last: T;
  do {
    last = await get();
    if (ok(last)) return last;
    await sleep(50);
  } while (Date.now() < deadline);
  throw new Error(`${what}: still ${JSON.stringify(last)} after ${ms} ms`);
}

const log = (dir: string) =>
  existsSync(join(dir, "training.log")) ? readFileSync(join(dir, "training.log"), "utf8") : "";
const ticks = (dir: string) => (log(dir).match(/^tick \d+$/gm) ?? []).length;

async function waitRunning(handle: SlurmAttemptHandle) {
  const started = Date.now();
  await until(
    "trainer ticking",
    () => ticks(handle.taskDir),
    (n) => n > 0,
  );
  return Date.now() - started;
}

beforeAll(async () => {
  const started = Date.now();
  await cluster("start");
  console.log(`slurm cluster up in ${Date.now() - started} ms`);
}, 60_000);

afterAll(async () => {
  await cluster("stop");
  rmSync(work, { recursive: true, force: true });
}, 30_000);

describe("Slurm executor on a real single-node cluster", () => {
  it("runs a job to exit 0 and exit 3, with the runner's exit.json as the outcome", async () => {
    const okDir = newTaskDir("ok");
    const failDir = newTaskDir("fail");
    const submitted = Date.now();
    const ok = await submit(okDir, ["20", "0"]);
    const fail = await submit(failDir, ["3", "3"]);
    expect(ok).toMatchObject({ kind: "slurm", taskDir: okDir, attempt: 1, cluster: null });
    expect(ok.jobId).toMatch(/^\d+$/);
    expect(await executor.probe(ok)).toBe("running");
    await waitRunning(ok);
    console.log(`submit to trainer output: ${Date.now() - submitted} ms`);

    const okExit = await until(
      "exit 0",
      () => executor.readOutcome(okDir, 1),
      (e) => e !== null,
    );
    expect(okExit).toMatchObject({ attempt: 1, exitCode: 0, signal: null });
    expect(ticks(okDir)).toBe(20);
    const failExit = await until(
      "exit 3",
      () => executor.readOutcome(failDir, 1),
      (e) => e !== null,
    );
    expect(failExit).toMatchObject({ exitCode: 3, signal: null });
    await until(
      "probe exited",
      () => executor.probe(fail),
      (s) => s === "exited",
    );
    expect(await executor.signal(fail, "SIGTERM")).toBe(false);
    expect(readFileSync(join(failDir, "runner.json"), "utf8")).toContain('"attempt":1');
  });

  it("hands every argument to the trainer byte for byte", async () => {
    const dir = newTaskDir("args");
    const nasty = ["a b", "", "$(touch pwned)", "new\nline", "it's", '"q"', "--", "*"];
    const handle = await submit(dir, ["0", "0", "", ...nasty]);
    await until(
      "done",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
    );
    expect(readFileSync(join(dir, "args.bin"), "utf8").split("\0").slice(0, -1)).toEqual(nasty);
    expect(existsSync(join(dir, "pwned"))).toBe(false);
    expect(await executor.probe(handle)).toBe("exited");
  });

  it("cancel's SIGKILL ends the job; the outcome is Slurm's record, the runner having died too", async () => {
    const dir = newTaskDir("killed");
    const handle = await submit(dir, ["300", "0", "ignore-term"]);
    await waitRunning(handle);
    expect(await executor.probe(handle)).toBe("running");
    expect(await executor.inspect(handle)).toEqual({ runner: "alive", trainer: "alive" });
    expect(await executor.signal(handle, "SIGKILL")).toBe(true);
    const killed = await until(
      "killed",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
    );
    expect(killed).toMatchObject({ attempt: 1, exitCode: null });
    expect(killed?.error).toMatch(/cancelled \(scancel\) \(CANCELLED\)/);
    expect(await executor.probe(handle)).toBe("exited");
    const stopped = ticks(dir);
    await sleep(400);
    expect(ticks(dir)).toBe(stopped);
    expect(await executor.signal(handle, "SIGKILL")).toBe(false);
  });

  it("a job that finished while no studio watched is found and finalized from its record", async () => {
    const dir = newTaskDir("unwatched");
    const first = await submit(dir, ["3", "0"]);
    // "The studio" goes away: nothing of it is kept but the task folder.
    await until(
      "finished",
      () => existsSync(join(dir, "exit.json")),
      (v) => v,
    );
    const later = new SlurmExecutor({ slurmConf, partition: "studio" });
    const handle = await later.recoverHandle(dir, 1);
    expect(handle).toEqual(first);
    expect(await later.probe(handle!)).toBe("exited");
    expect(await later.readOutcome(dir, 1)).toMatchObject({ exitCode: 0 });
    expect(await later.recoverHandle(dir, 2)).toBeNull();
  });

  it("finds a job by its name when the studio died between sbatch and recording the id", async () => {
    const dir = newTaskDir("lost-id");
    const handle = await submit(dir, ["20", "0"]);
    rmSync(join(dir, "slurm-job.json"));
    expect(await executor.recoverHandle(dir, 1)).toEqual(handle);
    await until(
      "done",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
    );
  });

  it("pause and resume reach the trainer (scontrol suspend/resume), and SIGTERM reaches it too", async () => {
    const dir = newTaskDir("pause");
    const handle = await submit(dir, ["300", "0"]);
    await waitRunning(handle);
    expect(await executor.signal(handle, "SIGSTOP")).toBe(true);
    expect(await executor.probe(handle)).toBe("paused");
    expect(await executor.inspect(handle)).toEqual({ runner: "stopped", trainer: "stopped" });
    await sleep(300); // a tick already under way may still land
    const frozen = ticks(dir);
    await sleep(500);
    expect(ticks(dir)).toBe(frozen);
    expect(await executor.signal(handle, "SIGCONT")).toBe(true);
    await until(
      "ticking again",
      () => ticks(dir),
      (n) => n > frozen + 2,
    );
    expect(await executor.probe(handle)).toBe("running");

    expect(await executor.signal(handle, "SIGTERM")).toBe(true);
    const exit = await until(
      "exit on SIGTERM",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
    );
    // The trainer's own handler ran (exit 143), and the runner lived to record it.
    expect(exit).toMatchObject({ exitCode: 143, signal: null });
    expect(log(dir)).toContain("got SIGTERM");
  });

  it("a job cancelled while still queued ends as such, with no runner ever run", async () => {
    const later = new SlurmExecutor({
      slurmConf,
      partition: "studio",
      extraArgs: ["--begin=now+3600"],
    });
    const dir = newTaskDir("queued");
    const handle = await later.start({
      taskDir: dir,
      attempt: 1,
      command: { file: TRAINER, args: ["1", "0"], env: {} },
    });
    expect(handle.node).toBeNull();
    expect(await later.probe(handle)).toBe("running");
    expect(await later.readOutcome(dir, 1)).toBeNull();
    expect(await later.signal(handle, "SIGSTOP")).toBe(false);
    expect(await later.signal(handle, "SIGTERM")).toBe(true);
    const exit = await until(
      "cancelled",
      () => later.readOutcome(dir, 1),
      (e) => e !== null,
    );
    expect(exit).toMatchObject({
      attempt: 1,
      exitCode: null,
      signal: null,
      trainerPid: null,
      runnerPid: null,
      error: "the Slurm job was cancelled before it started",
    });
    expect(await later.probe(handle)).toBe("exited");
    expect(existsSync(join(dir, "runner.json"))).toBe(false);
  });

  it("a job id that now names another job is not this attempt's", async () => {
    const dir = newTaskDir("other-job");
    const handle = await submit(dir, ["1", "0"]);
    const stranger = { ...handle, taskDir: newTaskDir("stranger") };
    expect(await executor.probe(stranger)).toBe("gone");
    expect(await executor.signal(stranger, "SIGTERM")).toBe(false);
    await until(
      "done",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
    );
  });

  it("a restart of slurmctld during a job: the job goes on, the probe never says gone", async () => {
    const dir = newTaskDir("ctld-restart");
    const handle = await submit(dir, ["100", "0"]);
    await waitRunning(handle);
    const seen = new Set<AttemptState>();
    let restarting = true;
    const probing = (async () => {
      while (restarting) {
        seen.add(await executor.probe(handle));
        await sleep(100);
      }
    })();
    await cluster("restart-controller");
    restarting = false;
    await probing;
    expect([...seen]).toEqual(["running"]);
    const exit = await until(
      "done",
      () => executor.readOutcome(dir, 1),
      (e) => e !== null,
      20_000,
    );
    expect(exit).toMatchObject({ exitCode: 0 });
    expect(ticks(dir)).toBe(100);
    expect(await executor.probe(handle)).toBe("exited");
  });
});
