import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

/**
 * A studio with STUDIO_EXECUTOR=slurm on a real single-node cluster (scripts/slurm-cluster.sh),
 * driven through its API as the page drives it. Its own cluster folder and ports, so that it
 * runs alongside slurm-executor.test.ts. When the cluster cannot start, beforeAll fails with
 * the script's reason: these tests never skip.
 */

const run = promisify(execFile);
const CLUSTER_SCRIPT = resolve("scripts/slurm-cluster.sh");
const clusterDir = join(tmpdir(), "studio-slurm-studio-cluster");
const slurmConf = join(clusterDir, "slurm.conf");
const clusterEnv = {
  ...process.env,
  STUDIO_SLURM_CTLD_PORT: "16827",
  STUDIO_SLURM_SLURMD_PORT: "16828",
};
let studio: TestStudio;

async function cluster(action: "start" | "stop" | "restart-controller") {
  try {
    await run(CLUSTER_SCRIPT, [action, clusterDir], { timeout: 55_000, env: clusterEnv });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`slurm-cluster.sh ${action} failed: ${e.stderr?.trim() || e.message}`);
  }
}

async function slurm(command: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(command, args, { env: { ...process.env, SLURM_CONF: slurmConf } });
  return stdout.trim();
}

async function startTask(lines: number, intervalMs: number, extra: string[] = []) {
  const task = await studio.fixtureTask(
    ["--lines", String(lines), "--interval-ms", String(intervalMs), ...extra],
    `slurm ${lines}`,
  );
  await studio.client.task.start.mutate({ id: task.id });
  return task.id;
}

async function detail(id: string) {
  return studio.client.task.get.query({ id });
}

/** The attempt's Slurm job, once the studio has recorded it. */
async function jobOf(id: string) {
  return waitFor("the job to be submitted", async () => {
    const handle = (await detail(id)).attempts[0]?.handle as
      | { kind: string; jobId: string; node: string | null }
      | undefined;
    return handle?.jobId ? handle : null;
  });
}

async function settled(id: string, timeoutMs = 20_000) {
  return waitFor(
    "the task to end",
    async () => {
      const { task } = await detail(id);
      return ["completed", "failed", "cancelled"].includes(task.status) ? task : null;
    },
    timeoutMs,
  );
}

function logLines(id: string): string[] {
  return readFileSync(join(studio.home, "tasks", id, "training.log"), "utf8")
    .split("\n")
    .filter(Boolean);
}

const everyLineOnce = (total: number) =>
  Array.from({ length: total }, (_, i) => `line ${i + 1} of ${total}`);

beforeAll(async () => {
  await cluster("start");
  studio = await TestStudio.create("pglite", {
    STUDIO_EXECUTOR: "slurm",
    STUDIO_SLURM_CONF: slurmConf,
    STUDIO_SLURM_PARTITION: "studio",
    STUDIO_ALLOW_COMMAND_TRAINER: "1",
    STUDIO_CONCURRENCY: "4",
    STUDIO_CANCEL_GRACE_MS: "5000",
  });
  await studio.start();
}, 90_000);

afterAll(async () => {
  await studio?.dispose();
  await cluster("stop");
}, 60_000);

describe("the studio on a Slurm cluster", () => {
  it("runs a task as a Slurm job and keeps following it through a studio restart", async () => {
    // The trainer runs until the test says so: however slow the restart, it lands mid-run.
    const until = join(studio.home, "slurm-stop-now");
    const id = await startTask(100, 25, ["--until", until]);
    const job = await jobOf(id);
    expect(job.kind).toBe("slurm");
    await waitFor("some output", () => logLines(id).length > 10);

    await studio.restart();
    const after = await detail(id);
    expect(after.task.status).toBe("training");
    expect(after.attempts[0]).toMatchObject({ executor: "slurm", pid: null });
    expect((after.attempts[0]!.handle as { jobId: string }).jobId).toBe(job.jobId);
    expect(after.events.map((e) => e.message)).toContain(
      `the studio restarted; training went on (Slurm job ${job.jobId}${job.node ? ` on ${job.node}` : " (queued)"})`,
    );

    writeFileSync(until, "");
    const done = await settled(id);
    expect(done).toMatchObject({ status: "completed", statusReason: "finished" });
    const lines = logLines(id);
    expect(lines.length).toBeGreaterThanOrEqual(100);
    expect(lines.map((l) => l.replace(/ of 100$/, ""))).toEqual(
      Array.from({ length: lines.length }, (_, i) => `line ${i + 1}`),
    );
    const final = await detail(id);
    expect(final.attempts).toHaveLength(1);
    expect(final.attempts[0]).toMatchObject({ exitCode: 0, signal: null });
    expect(final.events.some((e) => e.message.startsWith("attempt 1 started (Slurm job"))).toBe(
      true,
    );
  }, 40_000);

  it("records exit 3 as failed", async () => {
    const id = await startTask(5, 10, ["--exit-code", "3"]);
    const done = await settled(id);
    expect(done).toMatchObject({ status: "failed", statusReason: "trainer exited with code 3" });
    expect((await detail(id)).attempts[0]).toMatchObject({ exitCode: 3, signal: null });
  });

  it("pauses (scontrol suspend), resumes, then cancels (SIGTERM to the trainer)", async () => {
    const id = await startTask(100_000, 20);
    const job = await jobOf(id);
    await waitFor("some output", () => logLines(id).length > 5);
    await studio.client.task.pause.mutate({ id });
    expect(await slurm("squeue", "--noheader", `--jobs=${job.jobId}`, "--format=%T")).toBe(
      "SUSPENDED",
    );
    await new Promise((r) => setTimeout(r, 300));
    const frozen = logLines(id).length;
    await new Promise((r) => setTimeout(r, 500));
    expect(logLines(id)).toHaveLength(frozen);
    await studio.client.task.resume.mutate({ id });
    await waitFor("output again", () => logLines(id).length > frozen + 5);

    await studio.client.task.cancel.mutate({ id });
    const done = await settled(id, 10_000);
    expect(done.status).toBe("cancelled");
    // Ended by the SIGTERM itself, well inside the grace period: no SIGKILL was needed.
    expect((await detail(id)).attempts[0]).toMatchObject({ exitCode: null, signal: "SIGTERM" });
  });

  it("cancels a task whose job is still queued in Slurm", async () => {
    // Another user's job holds the only node, so the studio's job waits for resources.
    const blocker = await slurm(
      "sbatch",
      "--parsable",
      "--exclusive",
      "--output=/dev/null",
      "--wrap=sleep 60",
    );
    try {
      await waitFor(
        "the blocker to run",
        async () =>
          (await slurm("squeue", "--noheader", `--jobs=${blocker}`, "--format=%T")) === "RUNNING",
      );
      const id = await startTask(10, 10);
      const job = await jobOf(id);
      expect(job.node).toBeNull();
      expect(await slurm("squeue", "--noheader", `--jobs=${job.jobId}`, "--format=%T")).toBe(
        "PENDING",
      );
      await studio.client.task.cancel.mutate({ id });
      const done = await settled(id, 10_000);
      expect(done).toMatchObject({ status: "cancelled", statusReason: "cancelled" });
      expect((await detail(id)).attempts[0]).toMatchObject({
        exitCode: null,
        signal: null,
        error: "the Slurm job was cancelled before it started",
      });
    } finally {
      await slurm("scancel", blocker);
    }
  });

  it("a restart of slurmctld during a job: the task goes on and completes", async () => {
    const id = await startTask(200, 30);
    await jobOf(id);
    await waitFor("some output", () => logLines(id).length > 5);
    await cluster("restart-controller");
    const done = await settled(id, 30_000);
    expect(done.status).toBe("completed");
    expect(logLines(id)).toEqual(everyLineOnce(200));
    expect((await detail(id)).events.map((e) => e.type)).not.toContain("lost");
  }, 45_000);
});
