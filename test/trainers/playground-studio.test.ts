import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_MODEL_ID } from "../../src/trainers/builtin/base-model";
import type { EvalRecord } from "../../src/trainers/evaluate/eval-record";
import { subscribe } from "../helpers/sse";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

/**
 * The playground and evaluation through a real studio, as a person uses them: the API's
 * subscription (tokens one by one, a refusal confined to its stream), `studio task sample`
 * streaming from a checkpoint and from the base alone, `studio task evaluate`, and an
 * evaluation's record read back after a studio restart.
 */
describe("playground and evaluation through the studio", () => {
  let studio: TestStudio;

  beforeAll(async () => {
    // Standing evaluations at the studio's own priority: at 19 (the default, which the
    // evaluator's own test checks) they would wait out every other test on the machine.
    studio = await TestStudio.create("pglite", { STUDIO_EVAL_NICENESS: "0" });
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
  });

  const statusOf = async (id: string) => (await studio.client.task.get.query({ id })).task.status;
  const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
    .trim()
    .split("\n");
  const upload = (fileName: string, lines: string[]) =>
    studio.client.dataset.upload.mutate({
      fileName,
      contentBase64: Buffer.from(lines.join("\n")).toString("base64"),
    });
  /** The first test's completed task (checkpoints step-1, step-2) and its held-out data. */
  let tried: { taskId: string; heldOut: string };

  it("streams, samples and evaluates a short built-in run; bad requests are refused by name", async () => {
    const train = await upload("train.jsonl", rows.slice(0, 24));
    const heldOut = await upload("held-out.jsonl", rows.slice(190, 193));
    const task = await studio.client.task.create.mutate({
      name: "to try",
      model: TINY_MODEL_ID,
      dataset: train.id,
      hyperparameters: { epochs: 1, batchSize: 12, maxLength: 32, loraRank: 4, saveSteps: 1 },
    });
    const settings = { maxNewTokens: 12, temperature: 0, topP: 1, seed: 0 };
    const stream = async (input: {
      side: "base" | "adapter";
      prompt: string;
      checkpoint?: string;
    }) => {
      const pieces: string[] = [];
      for await (const { data } of subscribe<
        { kind: "token"; text: string } | { kind: "done"; tokens: number }
      >(`http://127.0.0.1:${studio.port}`, "task.playground", {
        id: task.id,
        settings,
        ...input,
      })) {
        if (data.kind === "token") pieces.push(data.text);
        else return { pieces, done: data.tokens };
      }
      throw new Error("the stream ended without done");
    };

    // Before training there is nothing to load: said so, for this request only.
    await expect(stream({ side: "adapter", prompt: "x" })).rejects.toThrow(
      "the task has no trained adapter yet (no adapter_model.safetensors)",
    );
    await studio.client.task.start.mutate({ id: task.id });
    await waitFor(
      "the run to end",
      async () => !["pending", "queued", "preparing", "training"].includes(await statusOf(task.id)),
      60_000,
      50,
    );
    expect(await statusOf(task.id), studio.logOf(task.id).join("\n")).toBe("completed");
    expect(await studio.client.task.models.query({ id: task.id })).toEqual({
      final: true,
      checkpoints: ["step-1", "step-2"],
    });

    const adapter = await stream({ side: "adapter", prompt: "### Instruction:\n" });
    expect(adapter.pieces.length).toBe(adapter.done);
    expect(adapter.done).toBeGreaterThan(1);
    await expect(
      stream({ side: "adapter", prompt: "### Instruction:\n", checkpoint: "step-9" }),
    ).rejects.toThrow(
      `task ${task.id} (completed): the task has no checkpoint checkpoints/step-9; it has step-1, step-2`,
    );
    await expect(stream({ side: "base", prompt: "y".repeat(300) })).rejects.toThrow(
      "the prompt is 300 bytes; this model reads at most 254 bytes of prompt",
    );
    // The server that refused it still serves.
    expect((await stream({ side: "base", prompt: "### " })).done).toBeGreaterThan(0);

    // The CLI streams the same text the page gets, from the final adapter, a checkpoint or the base.
    const cliText = await studio.cli(
      "task",
      "sample",
      task.id,
      "--prompt",
      "### Instruction:\n",
      "--max-new-tokens",
      "12",
      "--temperature",
      "0",
    );
    expect(cliText).toBe(`${adapter.pieces.join("")}\n`);
    const base = await stream({ side: "base", prompt: "### Instruction:\n", checkpoint: "step-1" });
    const cliBase = await studio.cliJson<{ text: string }>(
      "task",
      "sample",
      task.id,
      "--prompt",
      "### Instruction:\n",
      "--max-new-tokens",
      "12",
      "--temperature",
      "0",
      "--checkpoint",
      "step-1",
      "--base",
    );
    expect(cliBase.text).toBe(base.pieces.join(""));
    await expect(
      studio.cli("task", "sample", task.id, "--prompt", "x", "--checkpoint", "step-9"),
    ).rejects.toThrow("the task has no checkpoint checkpoints/step-9; it has step-1, step-2");

    // Evaluation: refused by name, then run from the CLI, listed, and kept across a restart.
    await expect(
      studio.client.task.evaluate.mutate({ id: task.id, dataset: "nope" }),
    ).rejects.toThrow('no dataset with id "nope"');
    const listed = await studio.cli("dataset", "list");
    expect(listed).toContain(heldOut.id);
    const printed = await studio.cli(
      "task",
      "evaluate",
      task.id,
      "--dataset",
      heldOut.id,
      "--checkpoint",
      "step-2",
    );
    expect(printed).toMatch(
      /on held-out\.jsonl\nrows: +3 \(\d+ tokens\)\nloss: +\d+\.\d{4} \(base \d+\.\d{4}\)/,
    );
    expect(printed).toMatch(/exact match: \d\/3/);
    await studio.stop();
    await studio.start();
    const [evaluation] = await studio.client.task.evaluations.query({ id: task.id });
    expect(evaluation).toMatchObject({
      state: "done",
      source: { path: "checkpoints/step-2", step: 2 },
      dataset: { id: heldOut.id, name: "held-out.jsonl" },
      results: { rows: 3, exactMatch: { total: 3 } },
    });
    tried = { taskId: task.id, heldOut: heldOut.id };
  }, 240_000);

  it("an evaluation set scores every checkpoint once: through retention, an evaluator killed midway and a studio restart", async () => {
    const train = await upload("train-24.jsonl", rows.slice(0, 24));
    const heldOut = await upload("held-3.jsonl", rows.slice(193, 196));
    // 6 steps, a checkpoint every 2, only the last kept: step-2 and step-4 are removed by the
    // run itself, most likely before their turn comes.
    const task = await studio.client.task.create.mutate({
      name: "scored",
      model: TINY_MODEL_ID,
      dataset: train.id,
      evaluationDataset: heldOut.id,
      hyperparameters: {
        epochs: 1,
        batchSize: 4,
        maxLength: 32,
        loraRank: 4,
        saveSteps: 2,
        keepCheckpoints: 1,
      },
    });
    expect(task.evaluationSet).toMatchObject({
      version: 1,
      datasetId: heldOut.id,
      name: "held-3.jsonl",
    });
    const dir = join(studio.home, "tasks", task.id);
    expect(JSON.parse(readFileSync(join(dir, "task.json"), "utf8"))).toMatchObject({
      version: 3,
      evaluationSet: { path: task.evaluationSet!.path },
    });
    const evalDir = join(dir, "eval");
    /** The standing record whose evaluator runs now (its identity written), read from disk. */
    const runningNow = () => {
      for (const name of readdirSync(evalDir).filter((n) => n.endsWith(".json"))) {
        const record = JSON.parse(readFileSync(join(evalDir, name), "utf8")) as EvalRecord;
        if (record.state === "running" && record.process) return record;
      }
      return null;
    };
    await studio.client.task.start.mutate({ id: task.id });

    // An evaluator killed with its program (its whole process group), as an OOM kill would.
    const killed = await waitFor("a standing evaluation running", runningNow, 60_000, 5);
    process.kill(-killed.process!.pid, "SIGKILL");
    // The studio stopped while one runs: the evaluator is its own process and carries on.
    const during = await waitFor(
      "a standing evaluation running again",
      () => {
        const now = runningNow();
        return now && now.process!.pid !== killed.process!.pid ? now : null;
      },
      60_000,
      5,
    );
    await studio.stop();
    await studio.start();

    const scores = await waitFor(
      "every checkpoint scored",
      async () => {
        const all = await studio.client.task.evaluations.query({ id: task.id });
        const standing = all.filter((e) => e.origin === "standing");
        return standing.length === 3 && standing.every((e) => e.state === "done") ? standing : null;
      },
      120_000,
      100,
    );
    expect(await statusOf(task.id)).toBe("completed");
    // Once each: one record per checkpoint, on the set's data.
    expect(scores.map((e) => e.source).sort((a, b) => a.step! - b.step!)).toEqual([
      { path: "checkpoints/step-2", step: 2 },
      { path: "checkpoints/step-4", step: 4 },
      { path: "checkpoints/step-6", step: 6 },
    ]);
    for (const score of scores) {
      expect(score.dataset).toEqual({ id: heldOut.id, name: "held-3.jsonl" });
      if (score.state === "done") expect(score.results).toMatchObject({ rows: 3 });
    }
    const records = scores.map(
      (e) => JSON.parse(readFileSync(join(evalDir, `${e.id}.json`), "utf8")) as EvalRecord,
    );
    expect(records.find((r) => r.id === killed.id)?.tries).toBe(2);
    expect(records.find((r) => r.id === during.id)?.tries).toBe(during.tries);
    // The run's retention removed the early checkpoints; their kept weights are gone once scored.
    expect(readdirSync(join(dir, "checkpoints")).filter((n) => !n.startsWith("."))).toEqual([
      "step-6",
    ]);
    await waitFor(
      "the kept weights released",
      () => readdirSync(join(evalDir, "checkpoints")).length === 0,
      20_000,
      100,
    );
  }, 240_000);

  it("an evaluation set attached later scores the checkpoints there, from the CLI", async () => {
    await expect(
      studio.cli("task", "eval-set", tried.taskId, "--none", tried.heldOut),
    ).rejects.toThrow("name a dataset id to attach, or --none to detach (not both)");
    expect(await studio.cli("task", "eval-set", tried.taskId, tried.heldOut)).toMatch(
      new RegExp(
        `^${tried.taskId}: evaluation set held-out\\.jsonl \\(${tried.heldOut}, alpaca\\)`,
      ),
    );
    await waitFor(
      "both checkpoints scored",
      async () => {
        const all = await studio.client.task.evaluations.query({ id: tried.taskId });
        return all.filter((e) => e.origin === "standing" && e.state === "done").length === 2;
      },
      60_000,
      100,
    );
    const table = await studio.cli("task", "evaluations", tried.taskId);
    expect(table).toMatch(
      /checkpoints\/step-1 +held-out\.jsonl +eval set +done +\d+\.\d{4} +\d+\.\d{4}/,
    );
    expect(table).toMatch(/checkpoints\/step-2 +held-out\.jsonl +eval set +done/);
    expect(table).toMatch(/checkpoints\/step-2 +held-out\.jsonl +request +done/);
    expect(await studio.cli("task", "show", tried.taskId)).toContain(
      `eval set:   held-out.jsonl (${tried.heldOut}, alpaca): every checkpoint is scored on it`,
    );
    expect(await studio.cli("task", "eval-set", tried.taskId, "--none")).toBe(
      `${tried.taskId}: no evaluation set\n`,
    );
    const record = JSON.parse(
      readFileSync(join(studio.home, "tasks", tried.taskId, "task.json"), "utf8"),
    );
    expect(record.evaluationSet).toBeNull();
  }, 120_000);
});
