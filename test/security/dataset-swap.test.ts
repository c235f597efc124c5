import { createHash } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";
import { raw, trpcBody, trpcPath } from "./http";

const row = (text: string) => `${JSON.stringify({ instruction: text, output: "ok" })}\n`;

/**
 * A dataset file is checked when a task is created; swapping it afterwards (for a link to a
 * file outside the allowed folders) must not change what the task trains on. The task keeps a
 * copy pinned under its content hash, checked again at every start.
 */
describe("datasets pinned at create, checked again at start", () => {
  let studio: TestStudio;
  let roots: string;
  let outside: string;

  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), "studio-roots-"));
    outside = mkdtempSync(join(tmpdir(), "studio-outside-"));
    writeFileSync(join(outside, "secret.jsonl"), row("SECRET-OUTSIDE-THE-ROOTS").repeat(3));
    studio = await TestStudio.create("pglite", {
      STUDIO_DATASET_ROOTS: roots,
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
    });
    await studio.start();
  });
  afterAll(async () => {
    await studio.dispose();
    rmSync(roots, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  async function createWith(file: string, name: string, command = ["/bin/false"]) {
    writeFileSync(join(roots, file), row(`${name} 1`) + row(`${name} 2`));
    const registered = await studio.client.dataset.register.mutate({ path: join(roots, file) });
    return studio.client.task.create.mutate({
      name,
      model: "m",
      dataset: registered.id,
      trainer: "command",
      command,
    });
  }

  const sha = (bytes: string | Buffer) => createHash("sha256").update(bytes).digest("hex");

  async function refusal(call: Promise<unknown>) {
    const err = (await call.then(
      () => null,
      (e) => e,
    )) as { message: string; data?: { code: string } } | null;
    expect(err, "expected a refusal").not.toBeNull();
    return { code: err!.data?.code, message: err!.message };
  }

  it("trains on the pinned copy after the original was swapped for a link out of the roots", async () => {
    const original = join(roots, "data.jsonl");
    const task = await createWith("data.jsonl", "swapped");
    const bytes = readFileSync(original);
    expect(task.datasetPath).toBe(
      join(studio.home, "datasets", "pinned", sha(bytes), "data.jsonl"),
    );
    expect(readFileSync(task.datasetPath)).toEqual(bytes);

    unlinkSync(original);
    symlinkSync(join(outside, "secret.jsonl"), original);
    await studio.client.task.start.mutate({ id: task.id });
    const config = await waitFor("config.json", () => {
      try {
        return JSON.parse(readFileSync(join(studio.home, "tasks", task.id, "config.json"), "utf8"));
      } catch {
        return null;
      }
    });
    expect(config.dataset.path).toBe(task.datasetPath);
    expect(readFileSync(config.dataset.path, "utf8")).not.toContain("SECRET");
    // The swapped file itself is refused for any new task, by id or by path.
    const registeredAgain = await refusal(
      studio.client.dataset.register.mutate({ path: original }),
    );
    expect(registeredAgain.message).toMatch(/not found, or outside the allowed dataset folders/);
    const byPath = await refusal(
      studio.client.task.create.mutate({ name: "x", model: "m", dataset: original }),
    );
    expect(byPath.code).toBe("NOT_FOUND");
  });

  it("refuses start and retry when the pinned copy changed, became a link or is gone, and says why", async () => {
    const task = await createWith("other.jsonl", "tampered");
    const pinned = task.datasetPath;
    const start = () => refusal(studio.client.task.start.mutate({ id: task.id }));

    writeFileSync(pinned, row("edited after create"));
    let r = await start();
    expect(r.code).toBe("PRECONDITION_FAILED");
    expect(r.message).toMatch(
      new RegExp(
        `task ${task.id} cannot start: the dataset copy pinned for this task changed since the task was created`,
      ),
    );

    unlinkSync(pinned);
    symlinkSync(join(outside, "secret.jsonl"), pinned);
    r = await start();
    expect(r.message).toMatch(/no longer a plain file: .*symbolic link/);

    unlinkSync(pinned);
    r = await start();
    expect(r.message).toMatch(/the dataset copy pinned for this task is gone/);
    const detail = await studio.client.task.get.query({ id: task.id });
    expect(detail.task.status).toBe("pending");
    expect(detail.attempts).toEqual([]);
  });

  it("refuses a retry the same way", async () => {
    const task = await createWith("retry.jsonl", "retried");
    await studio.client.task.start.mutate({ id: task.id });
    await waitFor("the task to fail", async () => {
      return (await studio.client.task.get.query({ id: task.id })).task.status === "failed";
    });
    writeFileSync(task.datasetPath, row("edited after the first attempt"));
    const r = await refusal(studio.client.task.retry.mutate({ id: task.id }));
    expect(r.code).toBe("PRECONDITION_FAILED");
    expect(r.message).toMatch(/changed since the task was created/);
    expect((await studio.client.task.get.query({ id: task.id })).attempts).toHaveLength(1);
  });

  it("checks the pinned copy again when a queued task is launched", async () => {
    // One slot: the first task holds it while the second waits in the queue.
    const holder = await createWith("holder.jsonl", "holder", ["/bin/sleep", "60"]);
    const queued = await createWith("queued.jsonl", "queued");
    await studio.client.task.start.mutate({ id: holder.id });
    await waitFor("the holder to train", async () => {
      return (await studio.client.task.get.query({ id: holder.id })).task.status === "training";
    });
    await studio.client.task.start.mutate({ id: queued.id });
    expect((await studio.client.task.get.query({ id: queued.id })).task.status).toBe("queued");
    writeFileSync(queued.datasetPath, row("edited while queued"));
    await studio.client.task.cancel.mutate({ id: holder.id });
    const failed = await waitFor("the queued task's launch to be refused", async () => {
      const d = await studio.client.task.get.query({ id: queued.id });
      return d.task.status === "failed" ? d : null;
    });
    expect(failed.task.statusReason).toMatch(
      /^could not launch: the dataset cannot be trained on: the dataset copy pinned for this task changed since the task was created/,
    );
    expect(existsSync(join(studio.home, "tasks", queued.id, "runner.json"))).toBe(false);
  });

  it("answers register the same for a missing file and a file outside the roots", async () => {
    const answer = async (path: string) => {
      const res = await raw(studio.port, {
        method: "POST",
        path: trpcPath("dataset.register"),
        headers: { "content-type": "application/json" },
        body: trpcBody({ path }),
      });
      const error = JSON.parse(res.body).error.json;
      return {
        status: res.status,
        code: error.data.code,
        message: error.message.replace(path, "<path>"),
      };
    };
    const expected = {
      status: 404,
      code: "NOT_FOUND",
      message: `dataset file <path> not found, or outside the allowed dataset folders (${roots})`,
    };
    for (const path of [
      "/etc/passwd",
      "/etc/no-such-file",
      join(outside, "secret.jsonl"),
      join(outside, "missing.jsonl"),
      join(roots, "missing.jsonl"),
      join(roots, "..", "outside", "secret.jsonl"),
    ]) {
      expect(await answer(path), path).toEqual(expected);
    }
  });
});
