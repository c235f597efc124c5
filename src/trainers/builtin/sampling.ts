import type { Rng } from "./rng";

/** How the next token is drawn from the model's logits; pure, so a seed decides everything. */

export interface SamplingSettings {
  /** 0 picks the most likely token every time (greedy). */
  temperature: number;
  /** Nucleus sampling: only the most likely tokens whose probabilities add up to top-p are drawn from; 1 keeps all. */
  topP: number;
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Picks the next token from one row of logits; draws exactly one number from `rng` unless greedy. */
export function pickToken(logits: Float32Array, settings: SamplingSettings, rng: Rng): number {
  const best = argmax(logits);
  if (settings.temperature <= 0) return best;
  const weights = Array.from(logits, (l) => Math.exp((l - logits[best]!) / settings.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  // Most likely first; ties by index, so the order (and so the draw) never depends on sort stability.
  const order = weights.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) {
    kept.push(i);
    mass += weights[i]!;
    if (mass >= settings.topP * total) break;
  }
  let draw = rng.next() * mass;
  for (const i of kept) {
    draw -= weights[i]!;
    if (draw < 0) return i;
  }
  return kept.at(-1)!;
}
