import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { raw, trpcPath } from "./http";

/**
 * A task folder is written by trainers (custom commands included): whatever lies there, a
 * download or a log read must never follow a link out of it (config.json -> /etc/shadow).
 */
describe("downloads and log reads never follow links out of the task folder", () => {
  let studio: TestStudio;
  let outside: string;
  let secretFile: string;
  let taskId: string;
  let folder: string;
  const SECRET = "root:$6$not-for-download$:19000:0:99999:7:::";

  beforeAll(async () => {
    outside = mkdtempSync(join(tmpdir(), "studio-outside-"));
    secretFile = join(outside, "shadow");
    writeFileSync(secretFile, `${SECRET}\n`);
    studio = await TestStudio.create("pglite");
    await studio.start();
    taskId = (
      await studio.client.task.create.mutate({ name: "links", model: "m", dataset: "sample" })
    ).id;
    folder = join(studio.home, "tasks", taskId);
    mkdirSync(folder, { recursive: true });
  });
  afterAll(async () => {
    await studio.dispose();
    rmSync(outside, { recursive: true, force: true });
  });

  const download = (id: string, name: string, method = "GET") =>
    raw(studio.port, { method, path: `/api/tasks/${id}/files/${name}` });

  it("serves a plain file, and says not found for a missing one", async () => {
    writeFileSync(join(folder, "trainer_state.json"), '{"global_step":3}\n');
    const ok = await download(taskId, "trainer_state.json");
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('{"global_step":3}\n');
    expect(ok.headers["content-disposition"]).toBe(
      `attachment; filename="${taskId}-trainer_state.json"`,
    );
    const head = await download(taskId, "trainer_state.json", "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("18");
    expect((await download(taskId, "adapter_model.safetensors")).status).toBe(404);
  });

  it("refuses config.json -> a file outside (the shadow file), naming the reason", async () => {
    symlinkSync(secretFile, join(folder, "config.json"));
    const res = await download(taskId, "config.json");
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/config\.json is a symbolic link; links are not followed/);
    expect(res.body).not.toContain(SECRET);
  });

  it("refuses a link even when it points inside the folder, a FIFO, and a folder that is itself a link", async () => {
    symlinkSync(join(folder, "trainer_state.json"), join(folder, "adapter_config.json"));
    expect((await download(taskId, "adapter_config.json")).status).toBe(403);

    execFileSync("mkfifo", [join(folder, "model.safetensors")]);
    const fifo = await download(taskId, "model.safetensors");
    expect(fifo.status).toBe(403);
    expect(fifo.body).toMatch(/not a regular file/);

    // tasks/<id> -> a folder outside that holds a config.json of its own
    const other = (
      await studio.client.task.create.mutate({
        name: "linked folder",
        model: "m",
        dataset: "sample",
      })
    ).id;
    const elsewhere = join(outside, "task");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "config.json"), `${SECRET}\n`);
    // Create made the task's folder (its task.json): the link takes its place.
    rmSync(join(studio.home, "tasks", other), { recursive: true });
    symlinkSync(elsewhere, join(studio.home, "tasks", other));
    const linked = await download(other, "config.json");
    expect(linked.status).toBe(403);
    expect(linked.body).toMatch(/behind a symbolic link/);
    expect(linked.body).not.toContain(SECRET);
  });

  it("refuses a training.log that is a link: logs, logsAfter and the onLog stream", async () => {
    symlinkSync(secretFile, join(folder, "training.log"));
    expect((await download(taskId, "training.log")).status).toBe(403);
    for (const [procedure, input] of [
      ["task.logs", { id: taskId }],
      ["task.logsAfter", { id: taskId, after: null }],
    ] as const) {
      const res = await raw(studio.port, { path: trpcPath(procedure, input) });
      expect(res.status, procedure).toBe(403);
      expect(res.body).toMatch(/log is refused: training\.log is a symbolic link/);
      expect(res.body).not.toContain(SECRET);
    }
    const stream = await raw(studio.port, {
      path: trpcPath("task.onLog", { id: taskId }),
      headers: { accept: "text/event-stream" },
      readForMs: 1_000,
    });
    expect(stream.body).toMatch(/log is refused/);
    expect(stream.body).not.toContain(SECRET);
  });

  it("refuses names outside the fixed list and every path trick, before any file is touched", async () => {
    for (const path of [
      `/api/tasks/${taskId}/files/..%2f..%2f..%2fetc%2fpasswd`,
      `/api/tasks/${taskId}/files/../../../../etc/passwd`,
      `/api/tasks/${taskId}/files/%2e%2e`,
      `/api/tasks/${taskId}/files/studio.log`,
      `/api/tasks/..%2f${taskId}/files/config.json`,
    ]) {
      const res = await raw(studio.port, { path });
      expect([400, 404], path).toContain(res.status);
      expect(res.body).not.toContain(SECRET);
    }
  });
});
