import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTRPCClient, httpBatchLink } from "@trpc/client";
import { TRPCError } from "@trpc/server";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverValidationIssues } from "../../src/components/server-issues";
import { groupIssues } from "../../src/components/task-form";
import { type AppRouter, appRouter, createCaller } from "../../src/server/api/root";
import type { Context } from "../../src/server/api/trpc";
import { DatasetStore } from "../../src/server/datasets/store";
import type { Database } from "../../src/server/db/client";
import { loadEnv } from "../../src/server/env";
import { StudioBus } from "../../src/server/events/bus";
import { HfPeftReadiness } from "../../src/server/hf-peft-readiness";
import { PlaygroundSessions } from "../../src/server/playground/playground-sessions";
import { taskRecordOf } from "../../src/server/tasks/task-record";
import { createTestDatabase, type TestDatabase, testDatabaseKinds } from "../helpers/databases";

describe.each(testDatabaseKinds())("task router on %s", (kind) => {
  let testDb: TestDatabase;
  let database: Database;
  let home: string;
  let caller: ReturnType<typeof createCaller>;
  let context: Context;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "studio-router-"));
    testDb = await createTestDatabase(kind);
    database = await testDb.open();
    const env = loadEnv({ STUDIO_HOME: home });
    context = {
      env,
      database,
      bus: new StudioBus(),
      datasets: new DatasetStore(join(home, "datasets"), []),
      hfPeft: new HfPeftReadiness(env.STUDIO_PYTHON, home),
      playground: new PlaygroundSessions({ idleMs: 1000, python: () => "python3", baseEnv: {} }),
      supervisor: null,
      startedAt: new Date(),
      version: "test",
      booting: false,
      readOnly: null,
      authorized: true,
    };
    caller = createCaller(context);
  });

  afterAll(async () => {
    await database.close();
    await testDb.drop();
    rmSync(home, { recursive: true, force: true });
  });

  const valid = { name: "demo", model: "builtin:tiny", dataset: "sample" };

  it("creates a task with defaults, lists and gets it", async () => {
    const task = await caller.task.create(valid);
    expect(task.status).toBe("pending");
    expect(task.hyperparameters.epochs).toBe(3);
    expect(task.datasetFormat).toBe("alpaca");
    const list = await caller.task.list();
    expect(list.items.map((t) => t.id)).toContain(task.id);
    const detail = await caller.task.get({ id: task.id });
    expect(detail.task.name).toBe("demo");
    expect(detail.events.map((e) => e.type)).toEqual(["created"]);
    expect(detail.actions.start).toBe(true);
    // Its folder holds what the task was made from, for a rebuild should the database lose it.
    const written = JSON.parse(readFileSync(join(home, "tasks", task.id, "task.json"), "utf8"));
    expect(written).toEqual(taskRecordOf(task));
  });

  it("pages the list newest first and filters by status", async () => {
    for (let i = 0; i < 5; i++) await caller.task.create({ ...valid, name: `page ${i}` });
    const first = await caller.task.list({ limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toBeDefined();
    const second = await caller.task.list({ limit: 2, cursor: first.nextCursor });
    expect(second.items.map((t) => t.id)).not.toContain(first.items[0]!.id);
    expect(first.items[0]!.createdAt.getTime()).toBeGreaterThanOrEqual(
      second.items[0]!.createdAt.getTime(),
    );
    const none = await caller.task.list({ status: ["completed"] });
    expect(none.items).toEqual([]);
  });

  it.each([
    ["an empty name", { ...valid, name: "" }, /name/],
    ["a huge name", { ...valid, name: "x".repeat(500) }, /name/],
    ["shell syntax in the model", { ...valid, model: "x; rm -rf /" }, /model/],
    ["quotes in the model", { ...valid, model: "a'b\"c" }, /model/],
    ["zero epochs", { ...valid, hyperparameters: { epochs: 0 } }, /epochs/],
    [
      "a negative learning rate",
      { ...valid, hyperparameters: { learningRate: -1 } },
      /learningRate/,
    ],
    ["a string batch size", { ...valid, hyperparameters: { batchSize: "8" } }, /batchSize/],
    ["GPUs for the built-in trainer", { ...valid, gpus: 1 }, /gpus/],
    ["an argv for a non-command trainer", { ...valid, command: ["ls"] }, /command/],
  ])("refuses %s and creates nothing", async (_, input, field) => {
    const before = (await caller.task.list({ limit: 500 })).items.length;
    const err = await caller.task.create(input as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCError);
    expect((err as TRPCError).code).toBe("BAD_REQUEST");
    expect((err as TRPCError).message).toMatch(field);
    expect((await caller.task.list({ limit: 500 })).items.length).toBe(before);
  });

  it("refuses a dataset outside the allowed roots, and creates nothing", async () => {
    const before = (await caller.task.list({ limit: 500 })).items.length;
    // Not found and not allowed read the same: the answer does not tell which files exist.
    await expect(caller.task.create({ ...valid, dataset: "/etc/passwd" })).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringMatching(
        /^dataset file \/etc\/passwd not found, or outside the allowed dataset folders \(/,
      ),
    });
    expect((await caller.task.list({ limit: 500 })).items.length).toBe(before);
  });

  it("refuses a command trainer unless the operator allows it", async () => {
    await expect(
      caller.task.create({ ...valid, trainer: "command", command: ["/bin/true"] }),
    ).rejects.toMatchObject({ code: "FORBIDDEN" });
  });

  it("refuses more GPUs than configured", async () => {
    await expect(
      caller.task.create({ ...valid, trainer: "hf-peft", model: "org/model", gpus: 2 }),
    ).rejects.toThrow(/GPUs/);
  });

  it("takes several processes for hf-peft on the CPU only", async () => {
    const hf = { ...valid, trainer: "hf-peft" as const, model: "org/model" };
    const task = await caller.task.create({ ...hf, hyperparameters: { processes: 2 } });
    expect(task.hyperparameters.processes).toBe(2);
    await expect(
      caller.task.create({ ...valid, hyperparameters: { processes: 2 } }),
    ).rejects.toThrow(/only the hf-peft trainer runs several processes/);
    await expect(
      caller.task.create({ ...hf, gpus: 1, hyperparameters: { processes: 2 } }),
    ).rejects.toThrow(/one process per GPU/);
    await expect(caller.task.create({ ...hf, hyperparameters: { processes: 0 } })).rejects.toThrow(
      /"processes"[\s\S]*expected number to be >=1/,
    );
  });

  it("deletes a task that is not running; unknown ids are NOT_FOUND", async () => {
    const task = await caller.task.create(valid);
    await caller.task.delete({ id: task.id });
    await expect(caller.task.get({ id: task.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(caller.task.delete({ id: "tnosuchtask" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await expect(caller.task.get({ id: "../../etc" })).rejects.toMatchObject({
      code: "BAD_REQUEST",
    });
  });

  it("reports studio info with counts", async () => {
    const info = await caller.studio.info();
    expect(info.database).toBe(kind);
    expect(info.counts?.pending).toBeGreaterThan(0);
    expect(info.databaseHealth).toEqual({ status: "ok" });
  });

  describe("input problems, as the page receives them over HTTP", () => {
    // The studio's own router and error formatter, so what is tested is what the page gets.
    let server: Server;
    let client: ReturnType<typeof createTRPCClient<AppRouter>>;
    const refusal = (call: Promise<unknown>) =>
      call.then(
        () => null,
        (e: unknown) => e,
      );

    beforeAll(async () => {
      server = createServer(
        createHTTPHandler({
          router: appRouter,
          basePath: "/api/trpc/",
          createContext: () => context,
        }),
      );
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as AddressInfo;
      client = createTRPCClient<AppRouter>({
        links: [
          httpBatchLink({ url: `http://127.0.0.1:${port}/api/trpc`, transformer: superjson }),
        ],
      });
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("places a refused schema's issues on the form's fields, with their codes and bounds", async () => {
      const error = await refusal(
        client.task.create.mutate({ ...valid, name: "", hyperparameters: { epochs: 0 } }),
      );
      const grouped = groupIssues(serverValidationIssues(error));
      expect(Object.keys(grouped.fields).sort()).toEqual(["epochs", "name"]);
      expect(grouped.fields.epochs).toMatchObject({ code: "too_small", minimum: 1 });
      expect((error as Error).message).toMatch(/^name: .*; hyperparameters\.epochs: /);
    });

    it("places the server's own refusals of a field there: an unknown dataset, too many GPUs", async () => {
      const missing = await refusal(client.task.create.mutate({ ...valid, dataset: "nope" }));
      expect(groupIssues(serverValidationIssues(missing)).fields.dataset).toMatchObject({
        code: "custom",
        message: 'no dataset with id "nope"',
      });
      expect(missing).toMatchObject({ data: { code: "NOT_FOUND" } });
      const gpus = await refusal(
        client.task.create.mutate({ ...valid, trainer: "hf-peft", model: "org/model", gpus: 2 }),
      );
      expect(groupIssues(serverValidationIssues(gpus)).fields.gpus?.message).toMatch(/no GPUs/);
    });

    it("gives a refused upload's problems by line, and other refusals none", async () => {
      const upload = await refusal(
        client.dataset.upload.mutate({
          fileName: "broken.jsonl",
          contentBase64: Buffer.from('{"instruction":"a","output":"b"}\nnot json\n').toString(
            "base64",
          ),
        }),
      );
      expect(serverValidationIssues(upload)).toEqual([
        expect.objectContaining({ line: 2, path: [] }),
      ]);
      expect(
        serverValidationIssues(await refusal(client.task.get.query({ id: "tnosuch" }))),
      ).toEqual([]);
      expect(serverValidationIssues(new Error("[]"))).toEqual([]);
    });
  });
});
