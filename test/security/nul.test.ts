import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabaseKinds } from "../helpers/databases";
import { TestStudio } from "../helpers/studio";
import { raw, trpcBody, trpcPath } from "./http";

const NUL = "\u0000";
const LONE = "\ud800";

/** Text PostgreSQL cannot store is refused at the input (400); no answer ever carries SQL. */
describe.each(testDatabaseKinds())("NUL and lone surrogates on %s", (kind) => {
  let studio: TestStudio;

  beforeAll(async () => {
    studio = await TestStudio.create(kind);
    await studio.start();
  });
  afterAll(() => studio.dispose());

  async function call(procedure: string, input: unknown, method: "GET" | "POST") {
    const res = await raw(studio.port, {
      method,
      path: method === "GET" ? trpcPath(procedure, input) : trpcPath(procedure),
      headers: method === "POST" ? { "content-type": "application/json" } : {},
      body: method === "POST" ? trpcBody(input) : undefined,
    });
    return {
      status: res.status,
      body: res.body,
      message: JSON.parse(res.body).error?.json.message as string,
    };
  }

  const create = { name: "ok", model: "m", dataset: "sample" };
  const cases: [string, string, unknown, "GET" | "POST", RegExp][] = [
    [
      "a task name with NUL",
      "task.create",
      { ...create, name: `a${NUL}b` },
      "POST",
      /^name: contains a NUL character/,
    ],
    [
      "a task name with a lone surrogate",
      "task.create",
      { ...create, name: `a${LONE}b` },
      "POST",
      /^name: contains a lone UTF-16 surrogate/,
    ],
    [
      "a model with NUL",
      "task.create",
      { ...create, model: `m${NUL}` },
      "POST",
      /^model: contains a NUL/,
    ],
    [
      "a hyperparameter key with NUL",
      "task.create",
      { ...create, hyperparameters: { [`e${NUL}`]: 1 } },
      "POST",
      /^hyperparameters\.\(key\): contains a NUL/,
    ],
    [
      "a list cursor with NUL",
      "task.list",
      { limit: 5, cursor: { createdAt: new Date(), id: `x${NUL}` } },
      "GET",
      /^cursor\.id: contains a NUL/,
    ],
    [
      "a list cursor with a lone surrogate",
      "task.list",
      { limit: 5, cursor: { createdAt: new Date(), id: `\udc00` } },
      "GET",
      /^cursor\.id: contains a lone UTF-16/,
    ],
    ["a task id with NUL", "task.get", { id: `abc${NUL}` }, "GET", /^id: contains a NUL/],
    [
      "an upload's file name with NUL",
      "dataset.upload",
      { fileName: `a${NUL}.jsonl`, contentBase64: "" },
      "POST",
      /^fileName: contains a NUL/,
    ],
    [
      "a registered path with NUL",
      "dataset.register",
      { path: `/tmp/a${NUL}.jsonl` },
      "POST",
      /^path: contains a NUL/,
    ],
    [
      "a command argument with NUL",
      "task.create",
      { ...create, trainer: "command", command: [`/bin/echo${NUL}`] },
      "POST",
      /^command\.0: contains a NUL/,
    ],
    [
      "a session id with NUL",
      "session.revoke",
      { id: `s-00${NUL}` },
      "POST",
      /^id: contains a NUL/,
    ],
  ];

  it.each(cases)(
    "refuses %s with a 400 naming the field",
    async (_, procedure, input, method, message) => {
      const before = (await studio.client.task.list.query()).items.length;
      const res = await call(procedure, input, method);
      expect(res.status).toBe(400);
      expect(res.message).toMatch(message);
      expect(res.body).not.toMatch(/insert|select|params|"tasks"/i);
      expect((await studio.client.task.list.query()).items.length).toBe(before);
    },
  );

  it("keeps text PostgreSQL can store: emoji (surrogate pairs), CJK, control characters but NUL", async () => {
    const name = "训练 🚀 tab\tend";
    const task = await studio.client.task.create.mutate({ ...create, name });
    expect((await studio.client.task.get.query({ id: task.id })).task.name).toBe(name);
  });

  it("answers an internal error with a reference, and keeps the detail (SQL) in the studio's log", async () => {
    // A cursor date PostgreSQL's timestamp cannot hold passes the schema and fails in the database.
    const res = await call(
      "task.list",
      { limit: 5, cursor: { createdAt: new Date(8.64e15), id: "x" } },
      "GET",
    );
    expect(res.status).toBe(500);
    expect(res.message).toMatch(/^internal error \(reference [0-9a-f]{8} in the studio's log\)$/);
    expect(res.body).not.toMatch(/select|from|where|params|timestamp|stack/i);
    const ref = /reference ([0-9a-f]{8})/.exec(res.message)![1]!;
    expect(studio.log()).toMatch(new RegExp(`internal error ${ref} in task\\.list: .*`));
  });
});
