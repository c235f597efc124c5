import type { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";

/**
 * A faster BatchMatMul for the CPU backend. tfjs's own kernel computes every operand index
 * from generic strides in its innermost loop; here both operands are first laid out with the
 * shared dimension contiguous, so each output is a plain dot product, computed four at a time
 * to reuse loads. Measured about 3× faster on this model's shapes; results are deterministic.
 */

function contiguous(
  values: Float32Array,
  batches: number,
  rows: number,
  cols: number,
  transpose: boolean,
): Float32Array {
  if (!transpose) return values;
  const out = new Float32Array(values.length);
  for (let b = 0; b < batches; b++) {
    const base = b * rows * cols;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[base + c * rows + r] = values[base + r * cols + c]!;
    }
  }
  return out;
}

/** out[b, i, j] = Σ_k a[b, i, k] · bt[b, j, k] with broadcasting over a batch of size 1. */
export function batchedDot(
  a: Float32Array,
  bt: Float32Array,
  batchA: number,
  batchB: number,
  m: number,
  n: number,
  k: number,
): Float32Array {
  const batch = Math.max(batchA, batchB);
  const out = new Float32Array(batch * m * n);
  for (let b = 0; b < batch; b++) {
    const aBase = (b % batchA) * m * k;
    const bBase = (b % batchB) * n * k;
    const outBase = b * m * n;
    for (let i = 0; i < m; i++) {
      const aRow = aBase + i * k;
      const outRow = outBase + i * n;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const b0 = bBase + j * k;
        const b1 = b0 + k;
        const b2 = b1 + k;
        const b3 = b2 + k;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let p = 0; p < k; p++) {
          const x = a[aRow + p]!;
          s0 += x * bt[b0 + p]!;
          s1 += x * bt[b1 + p]!;
          s2 += x * bt[b2 + p]!;
          s3 += x * bt[b3 + p]!;
        }
        out[outRow + j] = s0;
        out[outRow + j + 1] = s1;
        out[outRow + j + 2] = s2;
        out[outRow + j + 3] = s3;
      }
      for (; j < n; j++) {
        const b0 = bBase + j * k;
        let s = 0;
        for (let p = 0; p < k; p++) s += a[aRow + p]! * bt[b0 + p]!;
        out[outRow + j] = s;
      }
    }
  }
  return out;
}

const batchMatMul: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as MathBackendCPU;
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const aRows = a.shape.at(-2)!;
  const aCols = a.shape.at(-1)!;
  const bRows = b.shape.at(-2)!;
  const bCols = b.shape.at(-1)!;
  const m = transposeA ? aCols : aRows;
  const k = transposeA ? aRows : aCols;
  const n = transposeB ? bRows : bCols;
  if ((transposeB ? bCols : bRows) !== k) {
    throw new Error(`matMul: inner dimensions of ${a.shape} and ${b.shape} differ`);
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = outerA.reduce((x, y) => x * y, 1);
  const batchB = outerB.reduce((x, y) => x * y, 1);
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) {
    throw new Error(`matMul: batch dimensions of ${a.shape} and ${b.shape} do not broadcast`);
  }
  const aValues = cpu.data.get(a.dataId)!.values as Float32Array;
  const bValues = cpu.data.get(b.dataId)!.values as Float32Array;
  const aRowMajor = contiguous(aValues, batchA, aRows, aCols, transposeA);
  // The kernel wants B as [n, k]: already so when transposeB, otherwise transpose it.
  const bTransposed = contiguous(bValues, batchB, bRows, bCols, !transposeB);
  const out = batchedDot(aRowMajor, bTransposed, batchA, batchB, m, n, k);
  const outer = batchA >= batchB ? outerA : outerB;
  return cpu.makeTensorInfo([...outer, m, n], "float32", out);
};

/** Replaces tfjs's CPU BatchMatMul with the kernel above; call once after the backend loads. */
export function registerFastMatMul(): void {
  if (tf.getKernel("BatchMatMul", "cpu")?.kernelFunc === batchMatMul) return;
  tf.unregisterKernel("BatchMatMul", "cpu");
  tf.registerKernel({ kernelName: "BatchMatMul", backendName: "cpu", kernelFunc: batchMatMul });
}
