import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { writeJsonAtomic } from "../../src/platform/atomic-write";
import { probe } from "../../src/platform/identity";
import {
  EVAL_RECORD_VERSION,
  type EvalRecord,
  evalRecordPath,
  parseEvalRecord,
} from "../../src/trainers/evaluate/eval-record";
import { judgeEvaluation } from "../../src/trainers/evaluate/eval-state";
import { evaluationEnv } from "../../src/trainers/evaluate/evaluate-command";
import { GenerationError, GenerationServer } from "../../src/trainers/playground/generation-server";
import { ModelSourceError, resolveModelSource } from "../../src/trainers/playground/model-source";
import type { GenerationSettings } from "../../src/trainers/playground/protocol";
import { serverCommand } from "../../src/trainers/playground/server-command";

/**
 * The playground's generation server and the evaluator, run for real on a task the built-in
 * trainer trained here (a few steps of the tiny model): separate processes, real files.
 */

const DIST = join(process.cwd(), "dist");
const FIXTURE = join(process.cwd(), "test", "fixtures", "builtin", "alpaca-200.jsonl");

let root: string;
let taskDir: string;
let heldOut: string;
const servers: GenerationServer[] = [];
const children: ChildProcess[] = [];

function run(file: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (c) => {
    output += c;
  });
  child.stderr?.on("data", (c) => {
    output += c;
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, output })));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "playground-"));
  const rows = (await readFile(FIXTURE, "utf8")).trim().split("\n");
  await writeFile(join(root, "train.jsonl"), `${rows.slice(0, 16).join("\n")}\n`);
  heldOut = join(root, "held-out.jsonl");
  await writeFile(heldOut, `${rows.slice(100, 103).join("\n")}\n`);
  taskDir = join(root, "task");
  await mkdir(taskDir);
  const config = {
    taskId: "task",
    attempt: 1,
    trainer: "builtin",
    model: "builtin:tiny",
    mode: "lora",
    dataset: { path: join(root, "train.jsonl"), format: "alpaca" },
    taskDir,
    hyperparameters: {
      epochs: 1,
      batchSize: 4,
      maxLength: 40,
      loraRank: 4,
      learningRate: 0.03,
      seed: 7,
      loggingSteps: 1,
      evalSteps: 100,
      saveSteps: 2,
    },
  };
  await writeFile(join(taskDir, "config.json"), JSON.stringify(config));
  const trained = await run(process.execPath, [
    join(DIST, "builtin-trainer.js"),
    "--task-dir",
    taskDir,
  ]);
  expect(trained.code, trained.output).toBe(0);
}, 180_000);

afterAll(async () => {
  for (const server of servers) server.close(0);
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

function startServer(source: string) {
  const command = serverCommand(
    "builtin",
    { nodePath: process.execPath, distDir: DIST, pythonPath: null },
    { taskDir, source },
  );
  const server = new GenerationServer(command);
  servers.push(server);
  return server;
}

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const piece of pieces) out.push(piece);
  return out;
}

const GREEDY: GenerationSettings = { maxNewTokens: 24, temperature: 0, topP: 1, seed: 0 };
const PROMPT = "### Instruction:\nWhat color is a banana?\n### Response:\n";

describe("the generation server", () => {
  test("streams base and adapter side by side, token by token; the same seed gives the same text", async () => {
    const server = startServer(taskDir);
    // Sampled with one seed, so only the two models' logits differ.
    const drawn = { ...GREEDY, temperature: 1 };
    const [base, adapter] = await Promise.all([
      collect(server.generate({ side: "base", prompt: PROMPT, ...drawn })),
      collect(server.generate({ side: "adapter", prompt: PROMPT, ...drawn })),
    ]);
    // One piece a token: streamed, not sent whole at the end.
    expect(base.length).toBeGreaterThan(1);
    expect(adapter.join("")).not.toBe(base.join(""));
    const sampled = { maxNewTokens: 30, temperature: 1.2, topP: 0.95, seed: 11 };
    const first = (
      await collect(server.generate({ side: "adapter", prompt: PROMPT, ...sampled }))
    ).join("");
    const again = (
      await collect(server.generate({ side: "adapter", prompt: PROMPT, ...sampled }))
    ).join("");
    expect(again).toBe(first);
    // Greedy ignores the seed.
    const greedy = async (seed: number) =>
      (await collect(server.generate({ side: "adapter", prompt: PROMPT, ...GREEDY, seed }))).join(
        "",
      );
    expect(await greedy(5)).toBe(await greedy(0));
  }, 120_000);

  test("a prompt too long fails that request alone; the one beside it and the next one finish", async () => {
    const server = startServer(taskDir);
    const beside = collect(server.generate({ side: "adapter", prompt: PROMPT, ...GREEDY }));
    await expect(
      collect(server.generate({ side: "adapter", prompt: "x".repeat(400), ...GREEDY })),
    ).rejects.toThrow("the prompt is 400 bytes; this model reads at most 254 bytes of prompt");
    expect((await beside).length).toBeGreaterThan(0);
    expect(
      (await collect(server.generate({ side: "base", prompt: "ab", ...GREEDY }))).length,
    ).toBeGreaterThan(0);
    expect(server.alive).toBe(true);
  }, 120_000);

  test("a checkpoint is served as chosen; a server that cannot load says why", async () => {
    const checkpoint = await resolveModelSource(taskDir, "step-2", "lora");
    expect(checkpoint).toEqual({ path: "checkpoints/step-2", step: 2 });
    const early = startServer(join(taskDir, checkpoint.path));
    const text = (
      await collect(early.generate({ side: "adapter", prompt: PROMPT, ...GREEDY }))
    ).join("");
    expect(text.length).toBeGreaterThan(0);

    const broken = startServer(join(root, "nowhere"));
    await expect(
      collect(broken.generate({ side: "adapter", prompt: PROMPT, ...GREEDY })),
    ).rejects.toThrow(GenerationError);
    await expect(broken.ready).rejects.toThrow(/cannot load the model: .*adapter_config\.json/);
  }, 120_000);

  test("bad sources are refused by name before any model loads", async () => {
    await expect(resolveModelSource(taskDir, "step-99", "lora")).rejects.toThrow(
      "the task has no checkpoint checkpoints/step-99; it has step-2, step-4",
    );
    await expect(resolveModelSource(taskDir, "../other", "lora")).rejects.toThrow(
      "../other is not a checkpoint folder name (e.g. checkpoints/step-20)",
    );
    await expect(resolveModelSource(taskDir, null, "pretrain")).rejects.toThrow(ModelSourceError);
    await expect(resolveModelSource(join(root, "nowhere"), null, "lora")).rejects.toThrow(
      "the task has no trained adapter yet (no adapter_model.safetensors)",
    );
  });
});

function evalRecord(id: string, source: EvalRecord["source"]): EvalRecord {
  return {
    version: EVAL_RECORD_VERSION,
    id,
    origin: "request",
    state: "running",
    trainer: "builtin",
    readFrom: null,
    tries: 1,
    niceness: null,
    source,
    dataset: { id: "held-out", name: "held-out", path: heldOut, format: "alpaca" },
    python: null,
    process: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    results: null,
    reason: null,
  };
}

async function readRecord(id: string) {
  return parseEvalRecord(await readFile(evalRecordPath(taskDir, id), "utf8"));
}

describe("the evaluator", () => {
  test("records loss, perplexity, exact match and sample answers of the adapter against its base", async () => {
    await mkdir(join(taskDir, "eval"), { recursive: true });
    const id = "00000000000000a1";
    writeJsonAtomic(evalRecordPath(taskDir, id), evalRecord(id, { path: ".", step: null }));
    const { code, output } = await run(process.execPath, [
      join(DIST, "evaluator.js"),
      "--task-dir",
      taskDir,
      "--eval-id",
      id,
    ]);
    expect(code, output).toBe(0);
    const record = await readRecord(id);
    expect(record.state).toBe("done");
    const results = record.results!;
    expect(results.rows).toBe(3);
    expect(results.loss!).toBeLessThan(results.baseLoss!);
    expect(results.perplexity!).toBeCloseTo(Math.exp(results.loss!), 6);
    expect(results.exactMatch).toEqual({ matched: expect.any(Number), total: 3 });
    expect(results.samples).toHaveLength(3);
    expect(results.samples[0]!.prompt).toMatch(/### Response:\n$/);
    expect(judgeEvaluation(record, null, new Date())).toMatchObject({ state: "done", results });
  }, 180_000);

  test("a standing evaluation's evaluator yields before it claims; killed, it is judged failed by its identity; a missing checkpoint fails with its reason", async () => {
    const id = "00000000000000b2";
    writeJsonAtomic(evalRecordPath(taskDir, id), {
      ...evalRecord(id, { path: ".", step: null }),
      origin: "standing",
      niceness: 19,
    });
    const child = spawn(
      process.execPath,
      [join(DIST, "evaluator.js"), "--task-dir", taskDir, "--eval-id", id],
      { stdio: "ignore", detached: true },
    );
    children.push(child);
    const gone = new Promise((resolve) => child.on("exit", resolve));
    let record = await readRecord(id);
    while (record.process === null) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      record = await readRecord(id);
    }
    expect(judgeEvaluation(record, probe(record.process!), new Date()).state).toBe("running");
    // Niceness 19, and its session's scheduling group too where the kernel groups sessions
    // (sched_autogroup): a detached evaluator is a session of its own.
    const priority = priorityOf(child.pid!);
    expect(priority.nice).toBe(19);
    if (priority.group !== null) expect(priority.group).toBe(19);
    process.kill(-child.pid!, "SIGKILL");
    await gone;
    const judged = judgeEvaluation(await readRecord(id), probe(record.process!), new Date());
    expect(judged).toMatchObject({
      state: "failed",
      reason: `the evaluation process (pid ${child.pid}) ended before it finished`,
    });

    const missing = "00000000000000c3";
    writeJsonAtomic(
      evalRecordPath(taskDir, missing),
      evalRecord(missing, { path: "checkpoints/step-77", step: 77 }),
    );
    const ran = await run(process.execPath, [
      join(DIST, "evaluator.js"),
      "--task-dir",
      taskDir,
      "--eval-id",
      missing,
    ]);
    expect(ran.code).toBe(1);
    expect((await readRecord(missing)).reason).toMatch(
      /^the evaluation program failed \(exit code 1\): .*step-77/,
    );
  }, 180_000);
});

describe("judging an evaluation (pure)", () => {
  const base = evalRecord("00000000000000d4", { path: ".", step: null });
  const started = new Date(base.startedAt);
  const later = (ms: number) => new Date(started.getTime() + ms);
  const process = { bootId: "b", pid: 42, startTime: "1" };

  test.each([
    ["requested, within the grace period", base, null, 1000, "running"],
    ["requested, never started", base, null, 31_000, "failed"],
    ["running and alive", { ...base, process }, "alive", 1000, "running"],
    ["running, process gone", { ...base, process }, "gone", 1000, "failed"],
    ["running, machine restarted", { ...base, process }, "other-boot", 1000, "failed"],
    ["failed with a reason", { ...base, state: "failed", reason: "x" }, null, 1000, "failed"],
    ["done without results", { ...base, state: "done" }, null, 1000, "failed"],
    ["queued for its turn, however long", { ...base, state: "queued" }, null, 86_400_000, "queued"],
  ] as const)("%s", (_, record, liveness, after, state) => {
    expect(judgeEvaluation(record as EvalRecord, liveness, later(after)).state).toBe(state);
  });

  test("reads a version 1 record as one a person asked for, read from its source, tried once", () => {
    const dataset = { id: "held-out", name: "held-out", path: "/d/held.jsonl", format: "alpaca" };
    const { origin: _o, readFrom: _r, tries: _t, ...v1 } = { ...base, dataset, version: 1 };
    expect(parseEvalRecord(JSON.stringify(v1))).toEqual({
      ...v1,
      origin: "request",
      readFrom: null,
      tries: 1,
      niceness: null,
    });
    expect(() => parseEvalRecord(JSON.stringify({ ...v1, version: 3 }))).toThrow(
      "evaluation record version 3 is from a newer studio; this one reads up to 2",
    );
  });

  test("runs a standing evaluation's program on one thread; one asked for as it is", () => {
    const env = { PATH: "/bin" };
    expect(evaluationEnv({ origin: "standing" }, env)).toEqual({
      PATH: "/bin",
      STUDIO_BUILTIN_THREADS: "1",
      OMP_NUM_THREADS: "1",
      MKL_NUM_THREADS: "1",
    });
    expect(evaluationEnv({ origin: "request" }, env)).toBe(env);
  });
});

/** A process's niceness (field 19 of /proc/<pid>/stat), and its autogroup's where there is one. */
function priorityOf(pid: number): { nice: number; group: number | null } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // After the command name, which may hold spaces: field 3 onwards.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  let group: number | null = null;
  try {
    const line = readFileSync(`/proc/${pid}/autogroup`, "utf8");
    group = Number(/ nice (-?\d+)/.exec(line)?.[1]);
  } catch {
    // No autogroup file: the kernel does not group sessions.
  }
  return { nice: Number(fields[19 - 3]), group };
}
