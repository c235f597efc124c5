import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { taskConfigSchema } from "../protocol";
import { loadBaseModel } from "./base-model";
import { adapterConfigSchema, loraHook } from "./lora";
import { forwardLogits, type Weights } from "./model";
import { Rng } from "./rng";
import { readSafetensors } from "./safetensors";
import { selectCpuBackend } from "./tfjs";
import { decode, EOS, encodePrompt } from "./tokenizer";

/** Text generation from a finished task: its base model plus its adapter (or its pretrained weights). */

export interface SampleOptions {
  maxNewTokens: number;
  /** 0 picks the most likely byte every time. */
  temperature: number;
  seed: number;
}

/** Picks the next token from one row of logits. */
export function pickToken(logits: Float32Array, temperature: number, rng: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (temperature <= 0) return best;
  const weights = Array.from(logits, (l) => Math.exp((l - logits[best]!) / temperature));
  let draw = rng.next() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) {
    draw -= weights[i]!;
    if (draw < 0) return i;
  }
  return best;
}

export async function sampleText(
  taskDir: string,
  prompt: string,
  opts: SampleOptions,
): Promise<string> {
  await selectCpuBackend();
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const pretrained = config.mode === "pretrain";
  const model = await loadBaseModel(pretrained ? join(taskDir, "model.safetensors") : config.model);
  const toTensors = (map: typeof model.weights): Weights =>
    Object.fromEntries([...map].map(([name, t]) => [name, tf.tensor(t.data, t.shape)]));
  const weights = toTensors(model.weights);
  let adapter: Weights = {};
  let hook = null;
  if (!pretrained) {
    const adapterConfig = adapterConfigSchema.parse(
      JSON.parse(await readFile(join(taskDir, "adapter_config.json"), "utf8")),
    );
    adapter = toTensors(
      (await readSafetensors(join(taskDir, "adapter_model.safetensors"))).tensors,
    );
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
  const rng = new Rng(opts.seed);
  const tokens = encodePrompt(prompt);
  const generated: number[] = [];
  try {
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const window = tokens.slice(-model.config.contextLength);
      const lastRow = tf.tidy(() => {
        const logits = forwardLogits(
          model.config,
          weights,
          Int32Array.from(window),
          1,
          window.length,
          hook,
        );
        return tf.slice(logits, [window.length - 1, 0], [1, -1]);
      });
      const next = pickToken(lastRow.dataSync() as Float32Array, opts.temperature, rng);
      lastRow.dispose();
      if (next === EOS) break;
      tokens.push(next);
      generated.push(next);
    }
  } finally {
    tf.dispose([...Object.values(weights), ...Object.values(adapter)]);
  }
  return decode(generated);
}
