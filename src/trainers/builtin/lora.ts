import { z } from "zod";
import { LINEAR_MODULES, linearModules, type ModelConfig } from "./model";
import type { Rng } from "./rng";
import type { TensorMap } from "./safetensors";
import type { LoraPass } from "./transformer";

/**
 * LoRA on the frozen base: each targeted linear layer W gains (alpha / r) · B·A applied to a
 * dropout of its input. A starts uniform (as PEFT's Kaiming init), B at zero, so training
 * starts exactly at the base model. Weights are named as PEFT saves them.
 */

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
}

export function loraWeightName(module: string, part: "A" | "B"): string {
  return `base_model.model.${module}.lora_${part}.weight`;
}

/** The model's linear layers that the target names select; an unknown name is an error. */
export function targetedModules(config: ModelConfig, targets: string[]) {
  const unknown = targets.filter((t) => !LINEAR_MODULES.includes(t));
  if (unknown.length > 0) {
    throw new Error(
      `unknown LoRA target module(s) ${unknown.join(", ")}; the built-in model has ${LINEAR_MODULES.join(", ")}`,
    );
  }
  return linearModules(config).filter((m) => targets.includes(m.name.split(".").at(-1)!));
}

export function initLoraWeights(config: ModelConfig, settings: LoraSettings, rng: Rng): TensorMap {
  const weights: TensorMap = new Map();
  for (const module of targetedModules(config, settings.targetModules)) {
    const bound = 1 / Math.sqrt(module.inDim);
    const a = new Float32Array(settings.rank * module.inDim);
    for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * bound;
    weights.set(loraWeightName(module.name, "A"), {
      shape: [settings.rank, module.inDim],
      data: a,
    });
    weights.set(loraWeightName(module.name, "B"), {
      shape: [module.outDim, settings.rank],
      data: new Float32Array(module.outDim * settings.rank),
    });
  }
  return weights;
}

/**
 * The adapters as a pass applies them. `dropoutRng` null means evaluation (no dropout);
 * otherwise masks are drawn from it in a fixed order, so a resumed run draws the same ones.
 */
export function loraPass(settings: LoraSettings, dropoutRng: Rng | null): LoraPass {
  return {
    rank: settings.rank,
    scale: settings.alpha / settings.rank,
    dropout: settings.dropout,
    dropoutRng,
  };
}

/** What a reader needs of adapter_config.json (sampling, merging). */
export const adapterConfigSchema = z.object({
  r: z.number().int().min(1),
  lora_alpha: z.number(),
  target_modules: z.array(z.string()),
});

/** adapter_config.json as PEFT writes it, so PEFT-aware tools recognise the adapter. */
export function adapterConfigJson(settings: LoraSettings, baseModel: string): string {
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: settings.rank,
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    target_modules: settings.targetModules,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    modules_to_save: null,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
