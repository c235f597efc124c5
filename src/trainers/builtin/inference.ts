import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ModelSide } from "../playground/protocol";
import { taskConfigSchema } from "../protocol";
import { loadBaseModel } from "./base-model";
import { makeBatch } from "./batches";
import { openEngine } from "./engine";
import { adapterConfigSchema, loraPass } from "./lora";
import type { ModelConfig } from "./model";
import { readSafetensors } from "./safetensors";
import type { LoraPass } from "./transformer";

/**
 * A finished task's model held for inference (sampling, the playground, evaluation): its base,
 * and the base with what the task trained (the LoRA adapter, or a pretraining run's weights) read
 * from `source`, the task folder or one of its checkpoints. The only file of these features that
 * touches the trainer's engine: everything else sees plain arrays.
 */

export interface InferenceModel {
  config: ModelConfig;
  /** The logits that follow the last of `tokens` (at most contextLength of them). */
  nextLogits(tokens: number[], side: ModelSide): Float32Array;
  /** The summed next-token loss of `sequences` and how many tokens it counts, batch by batch. */
  lossSum(
    sequences: number[][],
    side: ModelSide,
    batchSize: number,
  ): { loss: number; tokens: number };
  dispose(): Promise<void>;
}

export async function loadInferenceModel(taskDir: string, source: string): Promise<InferenceModel> {
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const base = await loadBaseModel(config.model);
  // One thread: generation runs one short sequence at a time.
  const engine = await openEngine(1);
  try {
    const baseModel = engine.transformer(base.config);
    for (const [name, t] of base.weights) baseModel.setWeight(name, t.data);
    let trainedModel = baseModel;
    let lora: LoraPass | null = null;
    if (config.mode === "pretrain") {
      trainedModel = engine.transformer(base.config);
      const trained = await readSafetensors(join(source, "model.safetensors"));
      for (const [name, t] of trained.tensors) trainedModel.setWeight(name, t.data);
    } else {
      const adapterConfig = adapterConfigSchema.parse(
        JSON.parse(await readFile(join(source, "adapter_config.json"), "utf8")),
      );
      const adapter = await readSafetensors(join(source, "adapter_model.safetensors"));
      // The adapter's weights sit beside the base's; only a pass with `lora` uses them.
      for (const [name, t] of adapter.tensors) baseModel.setWeight(name, t.data);
      lora = loraPass(
        {
          rank: adapterConfig.r,
          alpha: adapterConfig.lora_alpha,
          dropout: 0,
          targetModules: adapterConfig.target_modules,
        },
        null,
      );
    }
    const of = (side: ModelSide) =>
      side === "base" ? { model: baseModel, lora: null } : { model: trainedModel, lora };
    const vocab = base.config.vocabSize;
    return {
      config: base.config,
      nextLogits(tokens, side) {
        const { model, lora: pass } = of(side);
        const logits = model.logits(
          { ids: Int32Array.from(tokens), batch: 1, time: tokens.length },
          pass,
        );
        return logits.slice((tokens.length - 1) * vocab, tokens.length * vocab);
      },
      lossSum(sequences, side, batchSize) {
        const { model, lora: pass } = of(side);
        let loss = 0;
        let tokens = 0;
        for (let start = 0; start < sequences.length; start += batchSize) {
          const batch = makeBatch(sequences.slice(start, start + batchSize));
          loss += model.lossSum(
            { ids: batch.ids, batch: batch.batch, time: batch.time },
            batch.targets,
            pass,
          );
          tokens += batch.tokenCount;
        }
        return { loss, tokens };
      },
      dispose: () => engine.close(),
    };
  } catch (err) {
    await engine.close();
    throw err;
  }
}
