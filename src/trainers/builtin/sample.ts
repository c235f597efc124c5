import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { taskConfigSchema } from "../protocol";
import { loadBaseModel } from "./base-model";
import { openEngine } from "./engine";
import { adapterConfigSchema, loraPass } from "./lora";
import { Rng } from "./rng";
import { readSafetensors } from "./safetensors";
import { decode, EOS, encodePrompt } from "./tokenizer";
import type { LoraPass } from "./transformer";

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
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const pretrained = config.mode === "pretrain";
  const base = await loadBaseModel(pretrained ? join(taskDir, "model.safetensors") : config.model);
  // One thread: generation runs one short sequence at a time.
  const engine = await openEngine(1);
  const generated: number[] = [];
  try {
    const model = engine.transformer(base.config);
    for (const [name, t] of base.weights) model.setWeight(name, t.data);
    let lora: LoraPass | null = null;
    if (!pretrained) {
      const adapterConfig = adapterConfigSchema.parse(
        JSON.parse(await readFile(join(taskDir, "adapter_config.json"), "utf8")),
      );
      const adapter = await readSafetensors(join(taskDir, "adapter_model.safetensors"));
      for (const [name, t] of adapter.tensors) model.setWeight(name, t.data);
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
    const rng = new Rng(opts.seed);
    const tokens = encodePrompt(prompt);
    const vocab = base.config.vocabSize;
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const window = tokens.slice(-base.config.contextLength);
      const logits = model.logits(
        { ids: Int32Array.from(window), batch: 1, time: window.length },
        lora,
      );
      const next = pickToken(logits.subarray((window.length - 1) * vocab), opts.temperature, rng);
      if (next === EOS) break;
      tokens.push(next);
      generated.push(next);
    }
  } finally {
    await engine.close();
  }
  return decode(generated);
}
