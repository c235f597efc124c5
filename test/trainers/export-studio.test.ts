import { createHash } from "node:crypto";
import { readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBaseModel, TINY_MODEL_ID } from "../../src/trainers/builtin/base-model";
import { computeLogits } from "../../src/trainers/builtin/logits";
import { adapterConfigSchema } from "../../src/trainers/builtin/lora";
import { readSafetensors } from "../../src/trainers/builtin/safetensors";
import { readProvenance } from "../../src/trainers/export/provenance";
import { TestStudio } from "../helpers/studio";
import { waitFor } from "../helpers/wait";

/**
 * Exporting a merged model of the built-in trainer through the studio, as a person does: a short
 * run of builtin:tiny, `studio task export`, the files downloaded, the merged model loaded by the
 * studio's own loader (its output is the base's with the adapter), and a new task trained on it.
 */
describe("exporting a merged model through the studio", () => {
  let studio: TestStudio;

  beforeAll(async () => {
    studio = await TestStudio.create("pglite");
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
  });

  const statusOf = async (id: string) => (await studio.client.task.get.query({ id })).task.status;
  const trained = async (id: string) => {
    await studio.client.task.start.mutate({ id });
    await waitFor(
      "the run to end",
      async () => !["pending", "queued", "preparing", "training"].includes(await statusOf(id)),
      60_000,
      50,
    );
    expect(await statusOf(id), studio.logOf(id).join("\n")).toBe("completed");
  };
  const download = (path: string) => fetch(`http://127.0.0.1:${studio.port}${path}`);

  it("exports a completed run with `studio task export`, serves its files, loads as a base with the adapter's output, and a task trains on it", async () => {
    // 36 training rows of the shipped sample, batch 12: 3 steps, a checkpoint after each.
    const rows = readFileSync(join(import.meta.dirname, "../../data/sample.jsonl"), "utf8")
      .split("\n")
      .slice(0, 40)
      .join("\n");
    const dataset = await studio.client.dataset.upload.mutate({
      fileName: "forty.jsonl",
      contentBase64: Buffer.from(rows).toString("base64"),
    });
    const settings = { epochs: 1, batchSize: 12, maxLength: 32, loraRank: 4, saveSteps: 1 };
    const task = await studio.client.task.create.mutate({
      name: "to export",
      model: TINY_MODEL_ID,
      dataset: dataset.id,
      hyperparameters: settings,
    });
    await expect(studio.client.task.export.mutate({ id: task.id })).rejects.toThrow(
      `task ${task.id} is pending; only a completed task has a final adapter to export`,
    );
    await trained(task.id);

    // First a checkpoint of the run, through the API: names are checked before anything runs.
    await expect(
      studio.client.task.export.mutate({ id: task.id, checkpoint: "../../etc" }),
    ).rejects.toThrow("../../etc is not a checkpoint folder name");
    await expect(
      studio.client.task.export.mutate({ id: task.id, checkpoint: "step-99" }),
    ).rejects.toThrow(`task ${task.id} has no checkpoint checkpoints/step-99`);
    const started = await studio.client.task.export.mutate({ id: task.id, checkpoint: "step-2" });
    expect(started).toMatchObject({
      state: "running",
      source: { kind: "checkpoint", path: "checkpoints/step-2", step: 2 },
    });
    await expect(studio.client.task.export.mutate({ id: task.id })).rejects.toThrow(
      `task ${task.id} is being exported`,
    );
    const fromCheckpoint = await waitFor(
      "the checkpoint's export",
      async () => {
        const s = await studio.client.task.exportStatus.query({ id: task.id });
        return s.state === "running" ? null : s;
      },
      30_000,
      50,
    );
    expect(fromCheckpoint).toMatchObject({ state: "done", source: { path: "checkpoints/step-2" } });

    // Then the final adapter, with the command, which replaces it.
    const printed = await studio.cli("task", "export", task.id);
    const folder = join(studio.home, "tasks", task.id, "export");
    expect(printed.trim().split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${folder}/config\\.json\\t\\d+ B$`)),
      expect.stringMatching(new RegExp(`^${folder}/model\\.safetensors\\t[\\d.]+ KB$`)),
      expect.stringMatching(new RegExp(`^${folder}/provenance\\.json\\t[\\d.]+ KB$`)),
    ]);
    const status = await studio.client.task.exportStatus.query({ id: task.id });
    if (status.state !== "done") throw new Error(`export: ${JSON.stringify(status)}`);
    expect(status.source).toEqual({ kind: "final", path: ".", step: 3 });
    expect(status.files.map((f) => f.name)).toEqual([
      "config.json",
      "model.safetensors",
      "provenance.json",
    ]);

    // Served by the downloads route, byte for byte; never through a link.
    const modelPath = join(folder, "model.safetensors");
    const served = await download(`/api/tasks/${task.id}/export/model.safetensors`);
    expect(served.status).toBe(200);
    expect(served.headers.get("content-disposition")).toBe(
      `attachment; filename="${task.id}-merged-model.safetensors"`,
    );
    expect(Buffer.from(await served.arrayBuffer()).equals(readFileSync(modelPath))).toBe(true);
    symlinkSync(join(studio.home, "studio.log"), join(folder, "linked.txt"));
    const linked = await download(`/api/tasks/${task.id}/export/linked.txt`);
    expect(linked.status).toBe(403);
    expect(await linked.text()).toMatch(/linked\.txt is a symbolic link; links are not followed/);
    expect((await download(`/api/tasks/${task.id}/export/.hidden`)).status).toBe(404);

    // What it was made from: the task, its pinned data, its settings, this studio.
    const provenance = readProvenance(readFileSync(join(folder, "provenance.json"), "utf8"));
    const detail = await studio.client.task.get.query({ id: task.id });
    const pinned = readFileSync(detail.task.datasetPath);
    expect(provenance).toMatchObject({
      version: 1,
      task: { id: task.id, name: "to export" },
      baseModel: TINY_MODEL_ID,
      dataset: {
        path: detail.task.datasetPath,
        sha256: createHash("sha256").update(pinned).digest("hex"),
        hashedFrom: "pinned-copy",
      },
      hyperparameters: detail.task.hyperparameters,
      source: { kind: "final", path: ".", step: 3 },
      studioVersion: JSON.parse(readFileSync("package.json", "utf8")).version,
    });

    // The studio's loader takes it as a base model; its logits are the base's with the adapter.
    const taskDir = join(studio.home, "tasks", task.id);
    const merged = await loadBaseModel(modelPath);
    const base = await loadBaseModel(TINY_MODEL_ID);
    const adapterConfig = adapterConfigSchema.parse(
      JSON.parse(readFileSync(join(taskDir, "adapter_config.json"), "utf8")),
    );
    const adapter = (await readSafetensors(join(taskDir, "adapter_model.safetensors"))).tensors;
    const ids = Int32Array.from(Buffer.from("### Instruction:\nSay something kind."));
    const input = { ids, batch: 1, time: ids.length };
    const withAdapter = await computeLogits(
      base.config,
      base.weights,
      { tensors: adapter, rank: adapterConfig.r, alpha: adapterConfig.lora_alpha },
      input,
    );
    const fromMerged = await computeLogits(base.config, merged.weights, null, input);
    const plain = await computeLogits(base.config, base.weights, null, input);
    let largest = 0;
    let moved = 0;
    for (let i = 0; i < withAdapter.length; i++) {
      largest = Math.max(largest, Math.abs(fromMerged[i]! - withAdapter[i]!));
      moved = Math.max(moved, Math.abs(plain[i]! - withAdapter[i]!));
    }
    console.log(
      `built-in merge: largest logit difference from base + adapter ${largest.toExponential(2)}; the adapter moves logits by up to ${moved.toExponential(2)}`,
    );
    expect(largest).toBeLessThan(1e-4);
    expect(moved).toBeGreaterThan(largest * 10);

    // A new task on the merged model trains.
    const onMerged = await studio.client.task.create.mutate({
      name: "on the merged model",
      model: modelPath,
      dataset: dataset.id,
      hyperparameters: { ...settings, batchSize: 36 },
    });
    await trained(onMerged.id);
    expect(studio.logOf(onMerged.id).join("\n")).toContain(
      `LoRA on ${modelPath}: 36 training rows`,
    );
  }, 120_000);
});
