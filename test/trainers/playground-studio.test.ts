import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_MODEL_ID } from "../../src/trainers/builtin/base-model";
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
    studio = await TestStudio.create("pglite");
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
  });

  const statusOf = async (id: string) => (await studio.client.task.get.query({ id })).task.status;

  it("streams, samples and evaluates a short built-in run; bad requests are refused by name", async () => {
    const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
      .trim()
      .split("\n");
    const upload = (fileName: string, lines: string[]) =>
      studio.client.dataset.upload.mutate({
        fileName,
        contentBase64: Buffer.from(lines.join("\n")).toString("base64"),
      });
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
  }, 240_000);
});
