import * as tf from "@tensorflow/tfjs-core";

/**
 * Hand-written forward and backward passes for the two row-wise softmaxes of the model.
 * tfjs's CPU backend builds softmax from five generic broadcasting ops; these plain loops
 * measured about 20× faster on the [batch, heads, T, T] attention scores and the
 * [tokens, vocab] logits, which together dominated a training step.
 */

/** Softmax over the last axis of [..., T, T] scores with key j > query i masked out. */
export const causalSoftmax = tf.customGrad((scores: tf.Tensor | tf.GradSaveFunc, save) => {
  const input = scores as tf.Tensor;
  const t = input.shape[input.rank - 1]!;
  const s = input.dataSync() as Float32Array;
  const p = new Float32Array(s.length);
  for (let row = 0; row < s.length / t; row++) {
    const i = row % t;
    const base = row * t;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j <= i; j++) max = Math.max(max, s[base + j]!);
    let sum = 0;
    for (let j = 0; j <= i; j++) {
      const e = Math.exp(s[base + j]! - max);
      p[base + j] = e;
      sum += e;
    }
    for (let j = 0; j <= i; j++) p[base + j] = p[base + j]! / sum;
  }
  const probs = tf.tensor(p, input.shape);
  (save as tf.GradSaveFunc)([probs]);
  return {
    value: probs,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const pr = saved[0]!.dataSync() as Float32Array;
      const g = dy.dataSync() as Float32Array;
      const dx = new Float32Array(pr.length);
      for (let row = 0; row < pr.length / t; row++) {
        const i = row % t;
        const base = row * t;
        let dot = 0;
        for (let j = 0; j <= i; j++) dot += g[base + j]! * pr[base + j]!;
        for (let j = 0; j <= i; j++) dx[base + j] = pr[base + j]! * (g[base + j]! - dot);
      }
      return tf.tensor(dx, saved[0]!.shape);
    },
  };
});

/**
 * Sum of token cross-entropies of [N, V] logits against `targets` (−1 = ignored position).
 * Returns a scalar; the caller divides by the number of counted tokens.
 */
export function crossEntropySum(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save) => {
    const x = input as tf.Tensor2D;
    const [n, v] = x.shape;
    const l = x.dataSync() as Float32Array;
    const probs = new Float32Array(l.length);
    let total = 0;
    for (let r = 0; r < n; r++) {
      const target = targets[r]!;
      if (target < 0) continue;
      const base = r * v;
      let max = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < v; c++) max = Math.max(max, l[base + c]!);
      let sum = 0;
      for (let c = 0; c < v; c++) {
        const e = Math.exp(l[base + c]! - max);
        probs[base + c] = e;
        sum += e;
      }
      for (let c = 0; c < v; c++) probs[base + c] = probs[base + c]! / sum;
      total += Math.log(sum) + max - l[base + target]!;
    }
    const saved = tf.tensor2d(probs, [n, v]);
    (save as tf.GradSaveFunc)([saved]);
    return {
      value: tf.scalar(total),
      gradFunc: (dy: tf.Tensor, kept: tf.Tensor[]) => {
        const scale = (dy.dataSync() as Float32Array)[0]!;
        const grad = Float32Array.from(kept[0]!.dataSync() as Float32Array);
        for (let r = 0; r < n; r++) {
          const target = targets[r]!;
          const base = r * v;
          if (target < 0) {
            grad.fill(0, base, base + v);
            continue;
          }
          grad[base + target] = grad[base + target]! - 1;
          for (let c = 0; c < v; c++) grad[base + c] = grad[base + c]! * scale;
        }
        return tf.tensor2d(grad, [n, v]);
      },
    };
  });
  return op(logits) as tf.Scalar;
}
