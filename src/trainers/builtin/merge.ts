import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type BaseModel, loadBaseModel } from "./base-model";
import { adapterConfigSchema } from "./lora";
import { weightShapes } from "./model";
import { type NamedTensor, readSafetensors, type TensorMap } from "./safetensors";

/**
 * The trainer's own merge: a LoRA adapter folded into its base, so the result is a plain model
 * that needs no adapter (and loads as a base model again). Hand-written rather than taken from a
 * library: it is exactly the forward pass of `loraHook` (lora.ts) moved into the weights, and
 * its test holds the two against each other.
 */

export interface MergeScale {
  rank: number;
  alpha: number;
}

const ADAPTER_NAME = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/**
 * W' = W + (alpha / r) · B·A for every weight the adapter adapts (W [out, in], A [r, in],
 * B [out, r]); every other weight is passed through. Sums are taken in double precision. The
 * base map is not changed. An adapter tensor that names no weight of the base, half a pair, or
 * shapes that do not fit is an error: a merge never drops part of an adapter silently.
 */
export function mergeLora(base: TensorMap, adapter: TensorMap, scale: MergeScale): TensorMap {
  const pairs = new Map<string, { A?: NamedTensor; B?: NamedTensor }>();
  for (const [name, tensor] of adapter) {
    const match = ADAPTER_NAME.exec(name);
    if (!match) throw new Error(`adapter tensor ${name} is not a LoRA A or B weight`);
    const pair = pairs.get(match[1]!) ?? {};
    pair[match[2] as "A" | "B"] = tensor;
    pairs.set(match[1]!, pair);
  }
  const merged: TensorMap = new Map(base);
  const factor = scale.alpha / scale.rank;
  for (const [module, { A, B }] of pairs) {
    const weight = base.get(`${module}.weight`);
    if (!weight)
      throw new Error(`the adapter adapts ${module}, which the base model does not have`);
    if (!A || !B) throw new Error(`the adapter has no lora_${A ? "B" : "A"} for ${module}`);
    const [out, inDim] = weight.shape as [number, number];
    const rank = scale.rank;
    const fits =
      weight.shape.length === 2 &&
      A.shape.join() === [rank, inDim].join() &&
      B.shape.join() === [out, rank].join();
    if (!fits) {
      throw new Error(
        `${module}: A [${A.shape}] and B [${B.shape}] do not fit the weight [${weight.shape}] at rank ${rank}`,
      );
    }
    const data = Float32Array.from(weight.data);
    const row = new Float64Array(inDim);
    for (let o = 0; o < out; o++) {
      row.fill(0);
      for (let k = 0; k < rank; k++) {
        const b = B.data[o * rank + k]!;
        if (b === 0) continue;
        const a = k * inDim;
        for (let i = 0; i < inDim; i++) row[i] = row[i]! + b * A.data[a + i]!;
      }
      const w = o * inDim;
      for (let i = 0; i < inDim; i++) data[w + i] = data[w + i]! + factor * row[i]!;
    }
    merged.set(`${module}.weight`, { shape: weight.shape, data });
  }
  return merged;
}

/**
 * The full model a finished run (or one of its checkpoints, `sourceDir`) amounts to: its base
 * (`baseModel`, as the task names it) with the adapter merged in; for a pretraining run, the
 * trained weights themselves, checked against the base's architecture.
 */
export async function mergedModel(
  baseModel: string,
  mode: "lora" | "pretrain",
  sourceDir: string,
): Promise<BaseModel> {
  const base = await loadBaseModel(baseModel);
  if (mode === "pretrain") {
    const trained = (await readSafetensors(join(sourceDir, "model.safetensors"))).tensors;
    for (const [name, shape] of weightShapes(base.config)) {
      if (trained.get(name)?.shape.join() !== shape.join()) {
        throw new Error(`${sourceDir}: weight ${name} is missing or has the wrong shape`);
      }
    }
    return { config: base.config, weights: trained };
  }
  const config = adapterConfigSchema.parse(
    JSON.parse(await readFile(join(sourceDir, "adapter_config.json"), "utf8")),
  );
  const adapter = (await readSafetensors(join(sourceDir, "adapter_model.safetensors"))).tensors;
  return {
    config: base.config,
    weights: mergeLora(base.weights, adapter, { rank: config.r, alpha: config.lora_alpha }),
  };
}
