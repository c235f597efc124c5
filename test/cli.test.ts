import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "./helpers/studio";
import { waitFor } from "./helpers/wait";

const CLI = join(import.meta.dirname, "../dist/cli.js");
const LINES_FIXTURE = join(import.meta.dirname, "fixtures/trainers/lines.mjs");

/** `studio <args>` with this environment: its exit code, stdout and stderr, whatever the code. */
function runCli(env: NodeJS.ProcessEnv, ...args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// Each test starts, stops or drives a whole studio through the CLI: on a busy CI machine a start
// alone has taken 30 s.
describe("the studio CLI against a running studio", { timeout: 90_000 }, () => {
  let studio: TestStudio;
  // The studio's user has a home of their own, so that studios of this machine's other users
  // (and other test runs) are not theirs to find.
  const userHome = mkdtempSync(join(tmpdir(), "studio-user-"));

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      HOME: userHome,
    });
  });
  afterAll(async () => {
    await studio.dispose();
    rmSync(userHome, { recursive: true, force: true });
  });

  /** The same person in another terminal, who did not set STUDIO_HOME. */
  const anotherTerminal = () => {
    const env = { ...studio.env } as NodeJS.ProcessEnv;
    delete env.STUDIO_HOME;
    return env;
  };

  it("says when no studio runs, with exit code 3 for status and 1 for task commands", async () => {
    await expect(studio.cli("status")).rejects.toThrow(/Command failed/);
    await expect(studio.cli("task", "list")).rejects.toThrow(
      /^studio: no studio is running on .*; start one with "studio start"$/,
    );
  });

  it("names the cause, whole, when the studio cannot start (after multi-byte output in studio.log)", async () => {
    mkdirSync(studio.home, { recursive: true });
    writeFileSync(join(studio.home, "studio.log"), "训练 ünïcödé ✓\n".repeat(50));
    // Another program holds the port: it accepts connections and hangs up at once.
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(studio.port, "127.0.0.1", resolve));
    try {
      await expect(studio.cli("start")).rejects.toThrow(
        `studio: listen EADDRINUSE: address already in use 127.0.0.1:${studio.port} (see ${join(studio.home, "studio.log")})`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it("starts in the background and reports its status", async () => {
    const started = await studio.cliJson<{ pid: number; url: string; startupMs: number }>("start");
    expect(started.url).toBe(`http://127.0.0.1:${studio.port}`);
    expect(started.startupMs).toBeGreaterThan(0);
    const status = await studio.cliJson<Record<string, unknown>>("status");
    expect(status).toMatchObject({ running: true, pid: started.pid, database: "pglite" });
    expect(await studio.cli("status")).toMatch(/running, pid \d+, up \d+s/);
    await expect(studio.cli("start")).rejects.toThrow(/already running: pid/);
  });

  it("creates, lists, shows and deletes tasks, with --json for scripts", async () => {
    const created = await studio.cliJson<{ id: string; status: string }>(
      "task",
      "create",
      "--name",
      "cli task",
      "--epochs",
      "2",
      "--lr",
      "0.001",
      "--keep-checkpoints",
      "5",
    );
    expect(created.status).toBe("pending");
    const list = await studio.cliJson<{ id: string }[]>("task", "list");
    expect(list.map((t) => t.id)).toContain(created.id);
    expect(await studio.cli("task", "list")).toMatch(/ID\s+NAME\s+STATUS/);
    const shown = await studio.cliJson<{ task: { hyperparameters: { epochs: number } } }>(
      "task",
      "show",
      created.id,
    );
    expect(shown.task.hyperparameters).toMatchObject({
      epochs: 2,
      learningRate: 0.001,
      keepCheckpoints: 5,
    });
    expect(await studio.cli("task", "show", created.id)).toMatch(/status:\s+pending/);
    expect(await studio.cli("task", "delete", created.id)).toMatch(`deleted task ${created.id}`);
  });

  it.each([
    [["task", "show", "tnosuchtask"], /^studio: no task with id tnosuchtask$/],
    [["task", "create", "--name", ""], /name/],
    [["task", "create", "--name", "x", "--epochs", "0"], /epochs/],
    [["task", "create", "--name", "x", "--epochs", "two"], /whole number/],
    [["task", "create", "--name", "x", "--keep-checkpoints", "0"], /keepCheckpoints/],
    [["task", "create", "--name", "x", "--model", "a;rm -rf /"], /model/],
    [["task", "create", "--name", "x", "--dataset", "/etc/passwd"], /dataset/i],
    [["task", "cancel", "tnosuchtask"], /no task with id/],
    [
      ["task", "create", "--name", "x", "--trainer", "command"],
      /the command trainer needs a command; give the command's program and arguments after --/,
    ],
    [
      ["task", "create", "--name", "x", "--command", "python train.py"],
      /--command is not an option/,
    ],
    [["task", "create", "--name", "x", "--trainer", "hf-peft", "--", "ls"], /not hf-peft/],
  ])("fails %j with a one-line reason", async (args, reason) => {
    const err = await studio.cli(...args).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toMatch(reason);
    expect(message.split("\n").filter((l) => l.startsWith("studio:")).length).toBeLessThanOrEqual(
      1,
    );
  });

  it("refuses to queue a Python task whose packages are missing, saying which", async () => {
    const created = await studio.cliJson<{ id: string }>(
      "task",
      "create",
      "--name",
      "peft",
      "--trainer",
      "hf-peft",
      "--model",
      "org/tiny-model",
    );
    const err = await studio.cli("task", "start", created.id).catch((e: Error) => e);
    expect(String(err)).toMatch(/the Python trainer cannot run here .*torch/);
    expect(
      (await studio.cliJson<{ task: { status: string } }>("task", "show", created.id)).task.status,
    ).toBe("pending");
  });

  it("starts a task and follows its log with -f until it ends, every line once", async () => {
    const task = await studio.fixtureTask(["--lines", "60", "--interval-ms", "20"]);
    expect(await studio.cli("task", "start", task.id)).toMatch(`${task.id}: queued`);
    const followed = (await studio.cli("task", "logs", task.id, "-f")).split("\n").filter(Boolean);
    expect(followed).toEqual(Array.from({ length: 60 }, (_, i) => `line ${i + 1} of 60`));
    expect(await studio.cli("task", "logs", task.id, "-n", "2")).toBe(
      "line 59 of 60\nline 60 of 60\n",
    );
    expect(await studio.cli("task", "show", task.id)).toMatch(/status:\s+completed/);
  });

  it("runs a command given after --; show lists its attempt's processes; logs --json", async () => {
    // --json before the --: everything after it is the command's
    const created = JSON.parse(
      await studio.cli(
        "task",
        "create",
        "--name",
        "argv",
        "--json",
        "--",
        process.execPath,
        LINES_FIXTURE,
        "--lines",
        "5",
        "--interval-ms",
        "1",
      ),
    ) as { id: string; trainer: string; command: string[] };
    expect(created).toMatchObject({
      trainer: "command",
      command: [process.execPath, LINES_FIXTURE, "--lines", "5", "--interval-ms", "1"],
    });
    await studio.cli("task", "start", created.id);
    const lines = (await studio.cli("task", "logs", created.id, "-f", "--json"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { offset: number; text: string });
    expect(lines.map((l) => l.text)).toEqual(
      Array.from({ length: 5 }, (_, i) => `line ${i + 1} of 5`),
    );
    expect(lines.map((l) => l.offset)).toEqual([0, 12, 24, 36, 48]);
    await waitFor(
      "the task to complete",
      async () =>
        (await studio.client.task.get.query({ id: created.id })).task.status === "completed",
      20_000,
      50,
    );
    const shown = await studio.cli("task", "show", created.id);
    expect(shown).toMatch(/^status: +completed$/m);
    expect(shown).toMatch(
      /^ {2}#1 {2}exit code 0 {2}\S+ \S+ to \S+ \S+ {2}runner pid \d+, trainer pid \d+ on \S+$/m,
    );
  });

  it("start on a paused task says so and fails; cancel waits until the trainer has stopped", async () => {
    const task = await studio.fixtureTask(["--lines", "2000", "--interval-ms", "10"], "long");
    await studio.cli("task", "start", task.id);
    await waitFor(
      "the trainer to run",
      async () => (await studio.client.task.get.query({ id: task.id })).task.status === "training",
      20_000,
      50,
    );
    expect(await studio.cli("task", "start", task.id)).toBe(
      `${task.id}: already training; nothing to start\n`,
    );
    await studio.cli("task", "pause", task.id);
    const paused = await runCli(studio.env as NodeJS.ProcessEnv, "task", "start", task.id);
    expect(paused.code).toBe(1);
    expect(paused.stderr.trim()).toBe(
      `studio: task ${task.id} is paused; start does nothing: resume it with "studio task resume ${task.id}"`,
    );
    await studio.cli("task", "resume", task.id);
    const cancel = await runCli(studio.env as NodeJS.ProcessEnv, "task", "cancel", task.id);
    expect(cancel).toMatchObject({
      code: 0,
      stdout: `${task.id}: cancelled\n`,
      stderr: `${task.id}: cancel requested; waiting for the trainer to stop…\n`,
    });
    expect(await studio.cli("task", "show", task.id)).toMatch(/^status: +cancelled$/m);
  });

  it("finds the studio from a terminal without STUDIO_HOME, and says which it is", async () => {
    const list = await runCli(anotherTerminal(), "task", "list", "--json");
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).length).toBeGreaterThan(0);
    expect(list.stderr.trim()).toBe(
      `studio: using the studio at http://127.0.0.1:${studio.port} (home ${studio.home}, pid ${studio.pid()}); set STUDIO_HOME or STUDIO_URL to choose`,
    );
    const status = await runCli(anotherTerminal(), "status");
    expect(status.stdout).toMatch(`home:     ${studio.home}`);
  });

  it("stops gracefully and restarts", async () => {
    const before = studio.pid();
    const restarted = await studio.cliJson<{ pid: number; stopped: number }>("restart");
    expect(restarted.stopped).toBe(before);
    expect(restarted.pid).not.toBe(before);
    expect(await studio.cli("stop")).toMatch(`studio stopped (pid ${restarted.pid})`);
    expect(studio.pid()).toBeNull();
    expect(studio.log()).toMatch(/SIGTERM: shutting down \(trainers keep running\)[\s\S]*stopped/);
  });

  it("refuses to restart a studio running in the foreground, and leaves it running", async () => {
    const foreground = spawn(process.execPath, [CLI, "start", "--foreground"], {
      env: studio.env as NodeJS.ProcessEnv,
      stdio: "ignore",
    });
    try {
      await waitFor("the foreground studio", () => studio.pid() === foreground.pid, 60_000, 50);
      const restart = await runCli(studio.env as NodeJS.ProcessEnv, "restart");
      expect(restart.code).toBe(1);
      expect(restart.stderr).toMatch(
        `studio: the studio (pid ${foreground.pid}, http://127.0.0.1:${studio.port}) runs in the foreground: it was started with \`studio start --foreground\`;`,
      );
      expect(studio.pid()).toBe(foreground.pid);
      expect(await studio.cli("stop")).toMatch(`studio stopped (pid ${foreground.pid})`);
    } finally {
      foreground.kill("SIGKILL");
    }
  });
});
