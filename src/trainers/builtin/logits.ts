import { openEngine } from "./engine";
import type { ModelConfig } from "./model";
import type { TensorMap } from "./safetensors";
import type { TokenBatch } from "./transformer";

/** An adapter's weights (PEFT names) and its scaling. */
export interface AdapterWeights {
  tensors: TensorMap;
  rank: number;
  alpha: number;
}

/**
 * Logits [batch·time, vocab] of a model, with an adapter or without, computed on one thread in
 * an engine of their own: for one-off uses (checking a merge against its adapter).
 */
export async function computeLogits(
  config: ModelConfig,
  weights: TensorMap,
  adapter: AdapterWeights | null,
  input: TokenBatch,
): Promise<Float32Array> {
  const engine = await openEngine(1);
  try {
    const model = engine.transformer(config);
    for (const [name, t] of weights) model.setWeight(name, t.data);
    if (!adapter) return model.logits(input, null);
    for (const [name, t] of adapter.tensors) model.setWeight(name, t.data);
    const scale = adapter.alpha / adapter.rank;
    return model.logits(input, { rank: adapter.rank, scale, dropout: 0, dropoutRng: null });
  } finally {
    await engine.close();
  }
}
