import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "./helpers/studio";

describe("the studio CLI against a running studio", () => {
  let studio: TestStudio;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", { STUDIO_ALLOW_COMMAND_TRAINER: "1" });
  });
  afterAll(() => studio.dispose());

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

  it("stops gracefully and restarts", async () => {
    const before = studio.pid();
    const restarted = await studio.cliJson<{ pid: number; stopped: number }>("restart");
    expect(restarted.stopped).toBe(before);
    expect(restarted.pid).not.toBe(before);
    expect(await studio.cli("stop")).toMatch(`studio stopped (pid ${restarted.pid})`);
    expect(studio.pid()).toBeNull();
    expect(studio.log()).toMatch(/SIGTERM: shutting down \(trainers keep running\)[\s\S]*stopped/);
  });
});
