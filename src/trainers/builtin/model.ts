import { z } from "zod";
import { Rng } from "./rng";
import type { TensorMap } from "./safetensors";
import { VOCAB_SIZE } from "./tokenizer";

/**
 * A small decoder-only transformer over bytes: learned token and position embeddings,
 * pre-LayerNorm blocks (causal multi-head attention, ReLU MLP), a final LayerNorm, and an
 * output layer tied to the token embedding. Linear weights are stored [out, in] and named as
 * in Hugging Face Llama checkpoints, so LoRA target names (q_proj, v_proj, …) mean the same.
 */

export const modelConfigSchema = z.object({
  vocabSize: z.number().int().min(1),
  dModel: z.number().int().min(1),
  nLayers: z.number().int().min(1),
  nHeads: z.number().int().min(1),
  dFF: z.number().int().min(1),
  contextLength: z.number().int().min(2),
});
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** The architecture behind `builtin:tiny`, sized so the default task trains in under a minute on two cores. */
export const TINY_CONFIG: ModelConfig = {
  vocabSize: VOCAB_SIZE,
  dModel: 64,
  nLayers: 2,
  nHeads: 4,
  dFF: 256,
  contextLength: 256,
};

/** The base weights of `builtin:tiny` come from this fixed seed, so every task shares one base. */
export const TINY_BASE_SEED = 20240601;

export const LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"];

export function linearModules(
  config: ModelConfig,
): { name: string; inDim: number; outDim: number }[] {
  const modules: { name: string; inDim: number; outDim: number }[] = [];
  const d = config.dModel;
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const proj of ["q_proj", "k_proj", "v_proj", "o_proj"]) {
      modules.push({ name: `model.layers.${layer}.self_attn.${proj}`, inDim: d, outDim: d });
    }
    modules.push({ name: `model.layers.${layer}.mlp.up_proj`, inDim: d, outDim: config.dFF });
    modules.push({ name: `model.layers.${layer}.mlp.down_proj`, inDim: config.dFF, outDim: d });
  }
  return modules;
}

/** Every weight of the model and its shape. */
export function weightShapes(config: ModelConfig): Map<string, number[]> {
  const d = config.dModel;
  const shapes = new Map<string, number[]>();
  shapes.set("model.embed_tokens.weight", [config.vocabSize, d]);
  shapes.set("model.embed_positions.weight", [config.contextLength, d]);
  for (const module of linearModules(config)) {
    shapes.set(`${module.name}.weight`, [module.outDim, module.inDim]);
  }
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const norm of ["input_layernorm", "post_attention_layernorm"]) {
      shapes.set(`model.layers.${layer}.${norm}.weight`, [d]);
      shapes.set(`model.layers.${layer}.${norm}.bias`, [d]);
    }
  }
  shapes.set("model.norm.weight", [d]);
  shapes.set("model.norm.bias", [d]);
  return shapes;
}

/** Seeded GPT-2-style initialisation: N(0, 0.02), residual outputs scaled down by depth. */
export function initWeights(config: ModelConfig, seed: number): TensorMap {
  const rng = new Rng(seed);
  const residualStd = 0.02 / Math.sqrt(2 * config.nLayers);
  const embeddingStd = 1 / Math.sqrt(config.dModel);
  const weights: TensorMap = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    else if (!name.endsWith(".bias")) {
      const residual = name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight");
      const std = name.startsWith("model.embed_") ? embeddingStd : residual ? residualStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    }
    weights.set(name, { shape, data });
  }
  return weights;
}
