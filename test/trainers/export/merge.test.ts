import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { saveModel, TINY_MODEL_ID } from "../../../src/trainers/builtin/base-model";
import { computeLogits } from "../../../src/trainers/builtin/logits";
import { initLoraWeights, loraWeightName } from "../../../src/trainers/builtin/lora";
import { mergedModel, mergeLora } from "../../../src/trainers/builtin/merge";
import { initWeights, type ModelConfig, TINY_CONFIG } from "../../../src/trainers/builtin/model";
import { Rng } from "../../../src/trainers/builtin/rng";
import type { TensorMap } from "../../../src/trainers/builtin/safetensors";

/** The built-in trainer's merge, W' = W + (alpha / r) · B·A, against the adapter's own forward pass. */

function randomTensor(rng: Rng, shape: number[], std = 1) {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  return { shape, data };
}

/** y = x·Wᵀ, in double precision. */
function linear(x: Float32Array, rows: number, w: { shape: number[]; data: Float32Array }) {
  const [out, inDim] = w.shape as [number, number];
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let sum = 0;
      for (let i = 0; i < inDim; i++) sum += x[r * inDim + i]! * w.data[o * inDim + i]!;
      y[r * out + o] = sum;
    }
  }
  return y;
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let largest = 0;
  for (let i = 0; i < a.length; i++) largest = Math.max(largest, Math.abs(a[i]! - b[i]!));
  return largest;
}

describe("mergeLora", () => {
  test.each([
    { out: 7, inDim: 5, rank: 1, alpha: 1 },
    { out: 16, inDim: 32, rank: 4, alpha: 8 },
    { out: 48, inDim: 24, rank: 8, alpha: 3.5 },
  ])(
    "x·W'ᵀ equals x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ on random inputs ($out×$inDim, r=$rank, α=$alpha)",
    ({ out, inDim, rank, alpha }) => {
      const rng = new Rng(out * 1000 + rank);
      const w = randomTensor(rng, [out, inDim]);
      const a = randomTensor(rng, [rank, inDim]);
      const b = randomTensor(rng, [out, rank]);
      const base: TensorMap = new Map([["layer.q_proj.weight", w]]);
      const adapter: TensorMap = new Map([
        [loraWeightName("layer.q_proj", "A"), a],
        [loraWeightName("layer.q_proj", "B"), b],
      ]);
      const merged = mergeLora(base, adapter, { rank, alpha }).get("layer.q_proj.weight")!;
      const rows = 9;
      const x = randomTensor(rng, [rows, inDim]).data;
      const viaMerged = linear(x, rows, merged);
      const down = Float32Array.from(linear(x, rows, a));
      const up = linear(down, rows, b);
      const viaAdapter = linear(x, rows, w).map((y, i) => y + (alpha / rank) * up[i]!);
      // float32 weights: the merged product differs from the two-step one by rounding only.
      const scale = Math.max(...viaAdapter.map(Math.abs));
      expect(maxDifference(viaMerged, viaAdapter) / scale).toBeLessThan(1e-6);
      // The base is left as it was.
      expect(base.get("layer.q_proj.weight")).toBe(w);
    },
  );

  test("the merged model's logits equal the base model's with the adapter applied, and unadapted weights pass through", async () => {
    const config: ModelConfig = {
      vocabSize: 40,
      dModel: 16,
      nLayers: 2,
      nHeads: 2,
      dFF: 32,
      contextLength: 12,
    };
    const settings = {
      rank: 4,
      alpha: 12,
      dropout: 0.1,
      targetModules: ["q_proj", "v_proj", "down_proj"],
    };
    const base = initWeights(config, 3);
    const adapter = initLoraWeights(config, settings, new Rng(5));
    // B starts at zero (training starts at the base); give it what training would.
    const rng = new Rng(6);
    for (const [name, tensor] of adapter) {
      if (name.includes("lora_B")) adapter.set(name, randomTensor(rng, tensor.shape, 0.05));
    }
    const merged = mergeLora(base, adapter, settings);
    expect(merged.get("model.layers.0.self_attn.k_proj.weight")).toBe(
      base.get("model.layers.0.self_attn.k_proj.weight"),
    );
    expect(merged.get("model.layers.1.mlp.down_proj.weight")).not.toBe(
      base.get("model.layers.1.mlp.down_proj.weight"),
    );

    const ids = Int32Array.from({ length: 2 * 10 }, () => Math.floor(rng.next() * 40));
    const input = { ids, batch: 2, time: 10 };
    const withAdapter = await computeLogits(
      config,
      base,
      { tensors: adapter, rank: settings.rank, alpha: settings.alpha },
      input,
    );
    const fromMerged = await computeLogits(config, merged, null, input);
    const plainBase = await computeLogits(config, base, null, input);
    expect(maxDifference(fromMerged, withAdapter)).toBeLessThan(1e-5);
    // …and the adapter does change the output, so the comparison above means something.
    expect(maxDifference(plainBase, withAdapter)).toBeGreaterThan(1e-3);
  });

  test("refuses an adapter it cannot apply whole, naming what is wrong", () => {
    const rng = new Rng(1);
    const base: TensorMap = new Map([["m.q_proj.weight", randomTensor(rng, [4, 3])]]);
    const a = randomTensor(rng, [2, 3]);
    const b = randomTensor(rng, [4, 2]);
    const scale = { rank: 2, alpha: 4 };
    const merge = (entries: [string, typeof a][]) => () => mergeLora(base, new Map(entries), scale);
    expect(merge([["base_model.model.m.q_proj.lora_A.weight", a]])).toThrow(
      "the adapter has no lora_B for m.q_proj",
    );
    expect(
      merge([
        ["base_model.model.m.k_proj.lora_A.weight", a],
        ["base_model.model.m.k_proj.lora_B.weight", b],
      ]),
    ).toThrow("the adapter adapts m.k_proj, which the base model does not have");
    expect(merge([["base_model.model.m.q_proj.lora_embedding_A", a]])).toThrow(
      "is not a LoRA A or B weight",
    );
    expect(
      merge([
        ["base_model.model.m.q_proj.lora_A.weight", randomTensor(rng, [2, 5])],
        ["base_model.model.m.q_proj.lora_B.weight", b],
      ]),
    ).toThrow("m.q_proj: A [2,5] and B [4,2] do not fit the weight [4,3] at rank 2");
    expect(() =>
      mergeLora(
        base,
        new Map([
          ["base_model.model.m.q_proj.lora_A.weight", a],
          ["base_model.model.m.q_proj.lora_B.weight", b],
        ]),
        { rank: 3, alpha: 4 },
      ),
    ).toThrow("do not fit the weight [4,3] at rank 3");
  });
});

describe("mergedModel", () => {
  test("a pretraining run's export is its trained weights, held to the base's architecture", async () => {
    const dir = mkdtempSync(join(tmpdir(), "merge-pretrain-"));
    try {
      const trained = initWeights(TINY_CONFIG, 9);
      await saveModel(join(dir, "model.safetensors"), { config: TINY_CONFIG, weights: trained });
      const model = await mergedModel(TINY_MODEL_ID, "pretrain", dir);
      expect(model.config).toEqual(TINY_CONFIG);
      for (const [name, tensor] of trained) {
        expect(model.weights.get(name)!.data, name).toEqual(tensor.data);
      }
      const other = { ...TINY_CONFIG, dFF: 128 };
      await saveModel(join(dir, "model.safetensors"), {
        config: other,
        weights: initWeights(other, 9),
      });
      await expect(mergedModel(TINY_MODEL_ID, "pretrain", dir)).rejects.toThrow(
        `${dir}: weight model.layers.0.mlp.up_proj.weight is missing or has the wrong shape`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
