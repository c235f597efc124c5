import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subscribe } from "./helpers/sse";
import { TestStudio } from "./helpers/studio";
import { waitFor } from "./helpers/wait";

// Malformed input through every door (tRPC over real HTTP, dataset upload and registration,
// the CLI): each is refused with a message that says what is wrong, and leaves the database and
// the home folder exactly as they were.

let studio: TestStudio;
let roots: string;
let pendingId: string;
let completedId: string;

type Snapshot = { tasks: string[]; counts: unknown; files: string[] };

function listFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const rel = relative(base, path);
    if (rel === "pglite" || rel === "studio.log") continue;
    if (entry.isDirectory()) out.push(`${rel}/`, ...listFiles(path, base));
    else out.push(`${rel} ${statSync(path).size}`);
  }
  return out.sort();
}

async function snapshot(): Promise<Snapshot> {
  const { items } = await studio.client.task.list.query({ limit: 500 });
  const tasks = await Promise.all(
    items.map(async (t) => {
      const d = await studio.client.task.get.query({ id: t.id });
      return `${t.id} ${t.status} ${t.updatedAt.toISOString()} attempts=${d.attempts.length} events=${d.events.length}`;
    }),
  );
  const { counts } = await studio.client.studio.info.query();
  return { tasks, counts, files: listFiles(studio.home) };
}

/** A raw tRPC call over HTTP, as any client (or attacker) could make it; returns the error message. */
async function trpc(
  path: string,
  input: unknown,
  kind: "query" | "mutation",
  rawBody?: string,
): Promise<string> {
  const url = `http://127.0.0.1:${studio.port}/api/trpc/${path}`;
  const encoded = JSON.stringify(superjson.serialize(input));
  const response =
    kind === "query"
      ? await fetch(`${url}?input=${encodeURIComponent(encoded)}`)
      : await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: rawBody ?? encoded,
        });
  const json = (await response.json()) as { error?: unknown };
  expect(response.status, `${path} should be refused`).toBeGreaterThanOrEqual(400);
  const error = superjson.deserialize<{ message: string }>(json.error as never);
  return error.message;
}

const create = (fields: Record<string, unknown>) =>
  trpc("task.create", { name: "bad", model: "fixture", dataset: "sample", ...fields }, "mutation");
const upload = (fileName: string, bytes: Buffer | string) =>
  trpc(
    "dataset.upload",
    {
      fileName,
      contentBase64: typeof bytes === "string" ? bytes : bytes.toString("base64"),
    },
    "mutation",
  );
const register = (path: string) => trpc("dataset.register", { path }, "mutation");
const cli = (...args: string[]) =>
  studio.cli(...args).then(
    (out) => {
      throw new Error(`expected the CLI to refuse, it printed: ${out}`);
    },
    (err: Error) => err.message,
  );

const huge = "x".repeat(200_000);
const command = (argv: unknown) => ({ trainer: "command", command: argv });

const cases: [string, () => Promise<string>, RegExp][] = [
  // task.create over HTTP: types, ranges, sizes, shell syntax
  ["name of the wrong type", () => create({ name: 42 }), /name: .*expected string/],
  ["empty name", () => create({ name: "   " }), /name: give the task a name/],
  ["huge name", () => create({ name: huge }), /name: at most 120 characters/],
  ["missing model", () => create({ model: undefined }), /model: .*expected string/],
  [
    "model with quotes and ;",
    () => create({ model: `x"; rm -rf / #` }),
    /model: a model is a hub id/,
  ],
  ["model with $(…)", () => create({ model: "$(reboot)" }), /model: a model is a hub id/],
  ["model with backticks", () => create({ model: "`id`" }), /model: a model is a hub id/],
  ["model with a space", () => create({ model: "org/my model" }), /model: a model is a hub id/],
  ["model with a newline", () => create({ model: "a\nb" }), /model: a model is a hub id/],
  ["huge model", () => create({ model: huge }), /model: /],
  ["negative gpus", () => create({ gpus: -1 }), /gpus: cannot be negative/],
  ["fractional gpus", () => create({ gpus: 1.5 }), /gpus: .*expected int/],
  ["too many gpus", () => create({ gpus: 1000 }), /gpus: .*64/],
  ["gpus the studio lacks", () => create({ trainer: "hf-peft", gpus: 1 }), /no GPUs configured/],
  ["unknown trainer", () => create({ trainer: "python" }), /trainer: /],
  ["unknown mode", () => create({ mode: "full" }), /mode: /],
  ["zero epochs", () => create({ hyperparameters: { epochs: 0 } }), /hyperparameters\.epochs: /],
  [
    "learning rate above 1",
    () => create({ hyperparameters: { learningRate: 5 } }),
    /hyperparameters\.learningRate: /,
  ],
  [
    "learning rate as a string",
    () => create({ hyperparameters: { learningRate: "0.1" } }),
    /hyperparameters\.learningRate: .*expected number/,
  ],
  [
    "command trainer without argv",
    () => create({ trainer: "command" }),
    /command: a command trainer needs an argv/,
  ],
  [
    "argv for the builtin trainer",
    () => create({ command: ["/bin/true"] }),
    /command: only the command trainer takes an argv/,
  ],
  ["argv as a shell string", () => create(command("rm -rf /")), /command: .*expected array/],
  ["empty argv", () => create(command([])), /command: /],
  [
    "dataset outside the allowed roots",
    () => create({ dataset: "/etc/passwd" }),
    /outside the allowed dataset folders/,
  ],
  ["relative dataset path", () => create({ dataset: "../../etc/passwd" }), /must be absolute/],
  ["unknown dataset id", () => create({ dataset: "nosuchdataset" }), /nosuchdataset/],
  [
    "body that is not JSON",
    () => trpc("task.create", null, "mutation", "{not json"),
    /JSON|Unexpected token/i,
  ],
  // ids and actions in the wrong state
  [
    "malformed task id",
    () => trpc("task.get", { id: "NOPE!'; drop table tasks;--" }, "query"),
    /id: a task id is lowercase letters and digits/,
  ],
  [
    "unknown task id",
    () => trpc("task.get", { id: "nosuchtask" }, "query"),
    /no task with id nosuchtask/,
  ],
  [
    "start an unknown task",
    () => trpc("task.start", { id: "nosuchtask" }, "mutation"),
    /no task with id nosuchtask/,
  ],
  [
    "start a completed task",
    () => trpc("task.start", { id: completedId }, "mutation"),
    /is completed; use retry/,
  ],
  [
    "cancel a completed task",
    () => trpc("task.cancel", { id: completedId }, "mutation"),
    /is completed; there is nothing to cancel/,
  ],
  [
    "pause a pending task",
    () => trpc("task.pause", { id: pendingId }, "mutation"),
    /is pending; only a training task can pause/,
  ],
  [
    "resume a completed task",
    () => trpc("task.resume", { id: completedId }, "mutation"),
    /only a paused task can resume/,
  ],
  ["list with limit 0", () => trpc("task.list", { limit: 0 }, "query"), /limit: /],
  [
    "list with an unknown status",
    () => trpc("task.list", { status: ["running"] }, "query"),
    /status\.0: /,
  ],
  [
    "logs before a negative offset",
    () => trpc("task.logs", { id: pendingId, before: -1 }, "query"),
    /before: /,
  ],
  [
    "logs with a huge limit",
    () => trpc("task.logs", { id: pendingId, limit: 1e9 }, "query"),
    /limit: /,
  ],
  [
    "metrics of an unknown task",
    () => trpc("task.metrics", { id: "nosuchtask" }, "query"),
    /no task with id nosuchtask/,
  ],
  [
    "unknown procedure",
    () => trpc("task.explode", { id: pendingId }, "mutation"),
    /No procedure found/i,
  ],
  [
    "onLog with a non-numeric last event id",
    async () => {
      const stream = subscribe(`http://127.0.0.1:${studio.port}`, "task.onLog", {
        id: pendingId,
        lastEventId: "abc",
      });
      return stream.next().then(
        () => "no error",
        (err: Error) => err.message,
      );
    },
    /lastEventId/,
  ],
  [
    "onLog of an unknown task",
    async () => {
      const stream = subscribe(`http://127.0.0.1:${studio.port}`, "task.onLog", {
        id: "nosuchtask",
      });
      return stream.next().then(
        () => "no error",
        (err: Error) => err.message,
      );
    },
    /no task with id nosuchtask/,
  ],
  // datasets
  [
    "upload with a .txt name",
    () => upload("data.txt", '{"text":"a"}\n'),
    /upload a \.jsonl or \.json file/,
  ],
  ["upload that is not base64", () => upload("data.jsonl", "@@not base64@@"), /not base64/],
  [
    "upload that is not UTF-8",
    () => upload("data.jsonl", Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a])),
    /UTF-8/i,
  ],
  [
    "upload of broken JSON lines",
    () => upload("data.jsonl", Buffer.from('{"text":"a"}\n{oops\n')),
    /line 2: not valid JSON/,
  ],
  [
    "upload of an empty file",
    () => upload("data.jsonl", Buffer.from("")),
    /empty|no rows|no examples/i,
  ],
  [
    "upload with a huge file name",
    () => upload(`${huge}.jsonl`, Buffer.from('{"text":"a"}\n')),
    /fileName: /,
  ],
  ["register a relative path", () => register("data.jsonl"), /give an absolute path/],
  ["register /etc/passwd", () => register("/etc/passwd"), /outside the allowed dataset folders/],
  [
    "register a symlink out of the roots",
    () => register(join(roots, "escape.jsonl")),
    /outside the allowed dataset folders/,
  ],
  [
    "register with .. out of the roots",
    () => register(join(roots, "../../etc/passwd")),
    /outside the allowed dataset folders/,
  ],
  ["register a missing file", () => register(join(roots, "missing.jsonl")), /not found/],
  ["register a folder", () => register(join(roots, "folder")), /not a file/],
  ["register invalid rows", () => register(join(roots, "invalid.jsonl")), /line 1: not valid JSON/],
  [
    "preview an id with a path in it",
    () => trpc("dataset.preview", { id: "../../etc/passwd" }, "query"),
    /a dataset id is letters, digits/,
  ],
  [
    "preview an unknown dataset",
    () => trpc("dataset.preview", { id: "nosuchdataset" }, "query"),
    /nosuchdataset/,
  ],
  // the CLI
  [
    "CLI: --gpus that is not a number",
    () => cli("task", "create", "--name", "x", "--gpus", "two"),
    /expected a whole number/,
  ],
  [
    "CLI: --lr that is not a number",
    () => cli("task", "create", "--name", "x", "--lr", "fast"),
    /expected a number/,
  ],
  [
    "CLI: --epochs out of range",
    () => cli("task", "create", "--name", "x", "--epochs", "-3"),
    /epochs/,
  ],
  [
    "CLI: shell metacharacters in --model",
    () => cli("task", "create", "--name", "x", "--model", "a';$(reboot)|b"),
    /a model is a hub id/,
  ],
  [
    "CLI: --dataset outside the roots",
    () => cli("task", "create", "--name", "x", "--dataset", "/etc/shadow"),
    /outside the allowed dataset folders|not found/,
  ],
  ["CLI: missing --name", () => cli("task", "create"), /required option '--name <name>'/],
  ["CLI: unknown task id", () => cli("task", "show", "nosuchtask"), /no task with id nosuchtask/],
  [
    "CLI: malformed task id",
    () => cli("task", "start", "../../etc"),
    /a task id is lowercase letters and digits/,
  ],
  [
    "CLI: pause a pending task",
    () => cli("task", "pause", pendingId),
    /only a training task can pause/,
  ],
  ["CLI: delete with no id", () => cli("task", "delete"), /missing required argument 'id'/],
  // Last: when it is wrongly accepted, the pending task starts, which the cases above rely on.
  [
    "retry a pending task",
    () => trpc("task.retry", { id: pendingId }, "mutation"),
    /is pending; only a failed, cancelled or interrupted task/,
  ],
];

describe("bad input", () => {
  beforeAll(async () => {
    roots = mkdtempSync(join(tmpdir(), "studio-roots-"));
    symlinkSync("/etc/passwd", join(roots, "escape.jsonl"));
    mkdirSync(join(roots, "folder"));
    writeFileSync(join(roots, "invalid.jsonl"), "not json at all\n");
    studio = await TestStudio.create("pglite", {
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      STUDIO_DATASET_ROOTS: roots,
    });
    await studio.start();
    pendingId = (
      await studio.client.task.create.mutate({
        name: "pending",
        model: "fixture",
        dataset: "sample",
      })
    ).id;
    const done = await studio.client.task.create.mutate({
      name: "done",
      model: "fixture",
      dataset: "sample",
      trainer: "command",
      command: ["/bin/true"],
    });
    completedId = done.id;
    await studio.client.task.start.mutate({ id: completedId });
    await waitFor("the task to complete", async () => {
      return (await studio.client.task.get.query({ id: completedId })).task.status === "completed";
    });
  }, 60_000);

  afterAll(async () => {
    await studio?.dispose();
    rmSync(roots, { recursive: true, force: true });
  });

  it.each(cases)(
    "%s: refused with a clear message, nothing changed",
    async (_, attempt, message) => {
      const before = await snapshot();
      expect(await attempt()).toMatch(message);
      expect(await snapshot()).toEqual(before);
    },
  );

  it("covers at least forty malformed inputs", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });
});
