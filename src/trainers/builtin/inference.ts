import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import type { ModelSide } from "../playground/protocol";
import { taskConfigSchema } from "../protocol";
import { loadBaseModel } from "./base-model";
import { makeBatch } from "./batches";
import { crossEntropySum } from "./kernels";
import { adapterConfigSchema, loraHook } from "./lora";
import { forwardLogits, type LinearHook, type ModelConfig, type Weights } from "./model";
import { readSafetensors, type TensorMap } from "./safetensors";
import { selectCpuBackend } from "./tfjs";

/**
 * A finished task's model held for inference (sampling, the playground, evaluation): its base,
 * and the base with what the task trained (the LoRA adapter, or a pretraining run's weights) read
 * from `source`, the task folder or one of its checkpoints. The only file of these features that
 * touches tensors: everything else sees plain arrays.
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
  dispose(): void;
}

const toTensors = (map: TensorMap): Weights =>
  Object.fromEntries([...map].map(([name, t]) => [name, tf.tensor(t.data, t.shape)]));

export async function loadInferenceModel(taskDir: string, source: string): Promise<InferenceModel> {
  await selectCpuBackend();
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const base = await loadBaseModel(config.model);
  const baseWeights = toTensors(base.weights);
  let trainedWeights = baseWeights;
  let adapter: Weights = {};
  let hook: LinearHook | null = null;
  if (config.mode === "pretrain") {
    trainedWeights = toTensors((await readSafetensors(join(source, "model.safetensors"))).tensors);
  } else {
    const adapterConfig = adapterConfigSchema.parse(
      JSON.parse(await readFile(join(source, "adapter_config.json"), "utf8")),
    );
    adapter = toTensors((await readSafetensors(join(source, "adapter_model.safetensors"))).tensors);
    hook = loraHook(
      adapter,
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
    side === "base"
      ? { weights: baseWeights, hook: null }
      : { weights: trainedWeights, hook: config.mode === "pretrain" ? null : hook };
  return {
    config: base.config,
    nextLogits(tokens, side) {
      const { weights, hook: sideHook } = of(side);
      const ids = Int32Array.from(tokens);
      const last = tf.tidy(() =>
        tf.slice(
          forwardLogits(base.config, weights, ids, 1, ids.length, sideHook),
          [ids.length - 1, 0],
          [1, -1],
        ),
      );
      const row = last.dataSync() as Float32Array;
      last.dispose();
      return row;
    },
    lossSum(sequences, side, batchSize) {
      const { weights, hook: sideHook } = of(side);
      let loss = 0;
      let tokens = 0;
      for (let start = 0; start < sequences.length; start += batchSize) {
        const batch = makeBatch(sequences.slice(start, start + batchSize));
        const sum = tf.tidy(() =>
          crossEntropySum(
            forwardLogits(base.config, weights, batch.ids, batch.batch, batch.time, sideHook),
            batch.targets,
          ),
        );
        loss += (sum.dataSync() as Float32Array)[0]!;
        sum.dispose();
        tokens += batch.tokenCount;
      }
      return { loss, tokens };
    },
    dispose() {
      const owned = [...Object.values(baseWeights), ...Object.values(adapter)];
      if (trainedWeights !== baseWeights) owned.push(...Object.values(trainedWeights));
      tf.dispose(owned);
    },
  };
}
