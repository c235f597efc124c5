import type { GenerationSettings, ModelSide } from "../playground/protocol";
import type { InferenceModel } from "./inference";
import { Rng } from "./rng";
import { pickToken } from "./sampling";
import { EOS, encodePrompt } from "./tokenizer";

/** Text generation one token at a time, over a model held by inference.ts. */

/** A prompt the model cannot take; the message says why and what fits. */
export class PromptTooLong extends Error {}

/**
 * Yields the continuation of `prompt` piece by piece, as soon as each token is drawn. Tokens are
 * bytes: a piece holds the characters the bytes so far complete (a multi-byte character comes
 * whole, once its last byte is drawn). Generation stops at the end marker or after maxNewTokens.
 */
export function* generateText(
  model: InferenceModel,
  side: ModelSide,
  prompt: string,
  settings: GenerationSettings,
): Generator<string> {
  const tokens = encodePrompt(prompt);
  const context = model.config.contextLength;
  if (tokens.length >= context) {
    throw new PromptTooLong(
      `the prompt is ${tokens.length - 1} bytes; this model reads at most ${context - 2} bytes of prompt`,
    );
  }
  const rng = new Rng(settings.seed);
  const decoder = new TextDecoder("utf-8", { fatal: false });
  for (let i = 0; i < settings.maxNewTokens; i++) {
    const next = pickToken(model.nextLogits(tokens.slice(-context), side), settings, rng);
    if (next === EOS) break;
    tokens.push(next);
    // The begin marker is never drawn into text: it has no byte.
    const piece = next < 256 ? decoder.decode(Uint8Array.of(next), { stream: true }) : "";
    if (piece) yield piece;
  }
  const rest = decoder.decode();
  if (rest) yield rest;
}
