/**
 * AdamW as PyTorch computes it (decoupled weight decay, bias-corrected moments), on plain
 * Float32Arrays so its whole state can be saved and restored bit for bit.
 */

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Parameters exempt from weight decay (biases and norm gains, as Hugging Face does). */
  noDecay?: ReadonlySet<string>;
}

export const DEFAULT_ADAMW: AdamWOptions = {
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0,
};

export interface AdamWState {
  step: number;
  expAvg: Map<string, Float32Array>;
  expAvgSq: Map<string, Float32Array>;
}

export function initAdamWState(params: Map<string, Float32Array>): AdamWState {
  const expAvg = new Map<string, Float32Array>();
  const expAvgSq = new Map<string, Float32Array>();
  for (const [name, value] of params) {
    expAvg.set(name, new Float32Array(value.length));
    expAvgSq.set(name, new Float32Array(value.length));
  }
  return { step: 0, expAvg, expAvgSq };
}

/** Updates `params` and `state` in place with one AdamW step at learning rate `lr`. */
export function adamWStep(
  params: Map<string, Float32Array>,
  grads: Map<string, Float32Array>,
  state: AdamWState,
  lr: number,
  options: AdamWOptions,
): void {
  state.step += 1;
  const { beta1, beta2, epsilon } = options;
  const correction1 = 1 - beta1 ** state.step;
  const sqrtCorrection2 = Math.sqrt(1 - beta2 ** state.step);
  for (const [name, p] of params) {
    const weightDecay = options.noDecay?.has(name) ? 0 : options.weightDecay;
    const g = grads.get(name);
    const m = state.expAvg.get(name);
    const v = state.expAvgSq.get(name);
    if (!g || !m || !v) throw new Error(`optimizer has no gradient or state for ${name}`);
    for (let i = 0; i < p.length; i++) {
      const decayed = p[i]! * (1 - lr * weightDecay);
      m[i] = beta1 * m[i]! + (1 - beta1) * g[i]!;
      v[i] = beta2 * v[i]! + (1 - beta2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / sqrtCorrection2 + epsilon;
      p[i] = decayed - (lr / correction1) * (m[i]! / denom);
    }
  }
}

/** Scales gradients in place so their global L2 norm is at most `maxNorm` (0 = no clipping); returns the norm before. */
export function clipGradNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sumSq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sumSq += g[i]! * g[i]!;
  const norm = Math.sqrt(sumSq);
  if (maxNorm > 0 && norm > maxNorm) {
    // The small epsilon matches torch.nn.utils.clip_grad_norm_.
    const scale = maxNorm / (norm + 1e-6);
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = g[i]! * scale;
  }
  return norm;
}
