/**
 * The row-wise parts of the model's passes (layer norm, softmaxes, cross-entropy), forward and
 * backward, as plain loops over Float32Arrays. Sums run in double precision, in a fixed order.
 */

export const LAYER_NORM_EPSILON = 1e-5;

/**
 * y = (x − mean)/√(var + ε)·w + b per row of x [rows, d]; keeps x̂ and 1/√(var + ε) for the
 * backward pass.
 */
export function layerNormForward(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  y: Float32Array,
  xhat: Float32Array,
  rstd: Float32Array,
  rows: number,
  d: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    let mean = 0;
    for (let c = 0; c < d; c++) mean += x[base + c]!;
    mean /= d;
    let variance = 0;
    for (let c = 0; c < d; c++) {
      const diff = x[base + c]! - mean;
      variance += diff * diff;
    }
    variance /= d;
    const s = 1 / Math.sqrt(variance + LAYER_NORM_EPSILON);
    rstd[r] = s;
    for (let c = 0; c < d; c++) {
      const h = (x[base + c]! - mean) * s;
      xhat[base + c] = h;
      y[base + c] = h * w[c]! + b[c]!;
    }
  }
}

/**
 * dx (+)= the gradient through the layer norm of dy; dw and db, when given, accumulate the
 * gains' and biases' gradients.
 */
export function layerNormBackward(
  dy: Float32Array,
  xhat: Float32Array,
  rstd: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  dw: Float32Array | null,
  db: Float32Array | null,
  rows: number,
  d: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * d;
    let meanG = 0;
    let meanGx = 0;
    for (let c = 0; c < d; c++) {
      const g = dy[base + c]! * w[c]!;
      meanG += g;
      meanGx += g * xhat[base + c]!;
    }
    meanG /= d;
    meanGx /= d;
    const s = rstd[r]!;
    for (let c = 0; c < d; c++) {
      const g = dy[base + c]! * w[c]!;
      dx[base + c] = dx[base + c]! + s * (g - meanG - xhat[base + c]! * meanGx);
    }
  }
  if (dw && db) {
    for (let c = 0; c < d; c++) {
      let sw = 0;
      let sb = 0;
      for (let r = 0; r < rows; r++) {
        sw += dy[r * d + c]! * xhat[r * d + c]!;
        sb += dy[r * d + c]!;
      }
      dw[c] = dw[c]! + sw;
      db[c] = db[c]! + sb;
    }
  }
}

/**
 * Softmax over entries 0…i of row `row` (a query at position i sees keys 0…i), in place;
 * entries i+1…end−1 become 0.
 */
export function causalSoftmaxRow(p: Float32Array, row: number, i: number, end: number): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j <= i; j++) max = Math.max(max, p[row + j]!);
  let sum = 0;
  for (let j = 0; j <= i; j++) {
    const e = Math.exp(p[row + j]! - max);
    p[row + j] = e;
    sum += e;
  }
  for (let j = 0; j <= i; j++) p[row + j] = p[row + j]! / sum;
  for (let j = i + 1; j < end; j++) p[row + j] = 0;
}

/**
 * In place: row `dpRow` of dP becomes dS = P ∘ (dP − Σ dP∘P) over entries 0…i, against row
 * `pRow` of P; entries i+1…end−1 become 0.
 */
export function causalSoftmaxBackwardRow(
  dp: Float32Array,
  dpRow: number,
  p: Float32Array,
  pRow: number,
  i: number,
  end: number,
): void {
  let dot = 0;
  for (let j = 0; j <= i; j++) dot += dp[dpRow + j]! * p[pRow + j]!;
  for (let j = 0; j <= i; j++) dp[dpRow + j] = p[pRow + j]! * (dp[dpRow + j]! - dot);
  for (let j = i + 1; j < end; j++) dp[dpRow + j] = 0;
}

/**
 * Σ of the token cross-entropies of logits [rows, v] against `targets` (−1: not counted). With
 * `grad`, also writes d(scale · Σ)/d logits there (0 on rows not counted).
 */
export function crossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  rows: number,
  v: number,
  grad: Float32Array | null,
  scale: number,
): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const base = r * v;
    const target = targets[r]!;
    if (target < 0) {
      grad?.fill(0, base, base + v);
      continue;
    }
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < v; c++) max = Math.max(max, logits[base + c]!);
    let sum = 0;
    for (let c = 0; c < v; c++) {
      const e = Math.exp(logits[base + c]! - max);
      if (grad) grad[base + c] = e;
      sum += e;
    }
    total += Math.log(sum) + max - logits[base + target]!;
    if (grad) {
      const k = scale / sum;
      for (let c = 0; c < v; c++) grad[base + c] = grad[base + c]! * k;
      grad[base + target] = grad[base + target]! - scale;
    }
  }
  return total;
}
