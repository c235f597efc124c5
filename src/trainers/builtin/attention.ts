import { causalSoftmaxBackwardRow, causalSoftmaxRow } from "./layers";
import { transposeInto } from "./linalg";
import type { GemmFn } from "./wasm-kernels";

/**
 * Causal multi-head attention, forward and backward, one (sequence, head) pair at a time, so
 * threads can take pairs independently: each writes only its own rows and columns. Queries run
 * in blocks of rows, and each block reaches only the keys it can see, so the masked half of the
 * scores is never computed. Pointers are byte addresses in the kernels' memory; `heap` views it.
 */

/** Query rows per block: part of the shape, never of the thread count. */
export const ATTENTION_BLOCK = 16;

export interface AttentionShape {
  batch: number;
  time: number;
  dModel: number;
  nHeads: number;
}

/** q (already scaled by 1/√headDim), k, v, att: [batch·time, dModel]; probs [batch, heads, T, T]. */
export interface AttentionForwardPtrs {
  q: number;
  k: number;
  v: number;
  probs: number;
  att: number;
}

export interface AttentionBackwardPtrs extends AttentionForwardPtrs {
  dAtt: number;
  dq: number;
  dk: number;
  dv: number;
}

/** Floats of scratch one thread needs: a transposed head, and the forward or backward's dP. */
export function attentionScratch(shape: AttentionShape, backward: boolean): number {
  const headDim = shape.dModel / shape.nHeads;
  return headDim * shape.time + (backward ? shape.time * shape.time : 0);
}

export function attentionForwardUnits(
  heap: Float32Array,
  gemm: GemmFn,
  shape: AttentionShape,
  ptr: AttentionForwardPtrs,
  scratch: number,
  u0: number,
  u1: number,
): void {
  const { time, dModel: d, nHeads } = shape;
  const headDim = d / nHeads;
  for (let u = u0; u < u1; u++) {
    const b = Math.floor(u / nHeads);
    const h = u % nHeads;
    const head = (b * time * d + h * headDim) * 4;
    const p = u * time * time * 4;
    transposeInto(heap, scratch / 4, time, heap, (ptr.k + head) / 4, d, time, headDim);
    for (let i0 = 0; i0 < time; i0 += ATTENTION_BLOCK) {
      const i1 = Math.min(time, i0 + ATTENTION_BLOCK);
      // Scores of queries i0…i1−1 against keys 0…i1−1, their softmax, then P·V.
      gemm(i0, i1, i1, headDim, ptr.q + head, d, 1, scratch, time, ptr.probs + p, time, 0);
      for (let i = i0; i < i1; i++) causalSoftmaxRow(heap, (ptr.probs + p) / 4 + i * time, i, i1);
      gemm(i0, i1, headDim, i1, ptr.probs + p, time, 1, ptr.v + head, d, ptr.att + head, d, 0);
    }
  }
}

export function attentionBackwardUnits(
  heap: Float32Array,
  gemm: GemmFn,
  shape: AttentionShape,
  ptr: AttentionBackwardPtrs,
  scratch: number,
  u0: number,
  u1: number,
): void {
  const { time, dModel: d, nHeads } = shape;
  const headDim = d / nHeads;
  const vt = scratch;
  const dp = scratch + headDim * time * 4;
  for (let u = u0; u < u1; u++) {
    const b = Math.floor(u / nHeads);
    const h = u % nHeads;
    const head = (b * time * d + h * headDim) * 4;
    const p = u * time * time * 4;
    for (let t = 0; t < time; t++) {
      const row = (head + t * d * 4) / 4;
      heap.fill(0, ptr.dk / 4 + row, ptr.dk / 4 + row + headDim);
      heap.fill(0, ptr.dv / 4 + row, ptr.dv / 4 + row + headDim);
    }
    transposeInto(heap, vt / 4, time, heap, (ptr.v + head) / 4, d, time, headDim);
    for (let i0 = 0; i0 < time; i0 += ATTENTION_BLOCK) {
      const i1 = Math.min(time, i0 + ATTENTION_BLOCK);
      const rows = i1 - i0;
      // dP = dO·Vᵀ, dS through the softmax, then dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO.
      gemm(i0, i1, i1, headDim, ptr.dAtt + head, d, 1, vt, time, dp, time, 0);
      for (let i = i0; i < i1; i++) {
        causalSoftmaxBackwardRow(
          heap,
          dp / 4 + i * time,
          heap,
          (ptr.probs + p) / 4 + i * time,
          i,
          i1,
        );
      }
      gemm(i0, i1, headDim, i1, dp, time, 1, ptr.k + head, d, ptr.dq + head, d, 0);
      const dsBlock = dp + i0 * time * 4;
      const qBlock = ptr.q + head + i0 * d * 4;
      gemm(0, i1, headDim, rows, dsBlock, 1, time, qBlock, d, ptr.dk + head, d, 1);
      const pBlock = ptr.probs + p + i0 * time * 4;
      const dOBlock = ptr.dAtt + head + i0 * d * 4;
      gemm(0, i1, headDim, rows, pBlock, 1, time, dOBlock, d, ptr.dv + head, d, 1);
    }
  }
}
