import type { Arena, Buf, GemmFn } from "./wasm-kernels";

/**
 * Whole-matrix products on buffers in the kernels' memory, all row-major, all through the one
 * strided kernel (which may be spread over threads). A·Bᵀ transposes B into a temporary first:
 * a copy of n·k floats against a product of m·n·k, and the kernel then reads B along rows.
 */
export class LinearAlgebra {
  constructor(
    readonly gemm: GemmFn,
    private readonly arena: Arena,
  ) {}

  /** C[m,n] (+)= A[m,k]·B[k,n]. */
  mm(c: Buf, a: Buf, b: Buf, m: number, n: number, k: number, accumulate = false): void {
    this.gemm(0, m, n, k, a.ptr, k, 1, b.ptr, n, c.ptr, n, accumulate ? 1 : 0);
  }

  /** C[m,n] (+)= A[k,m]ᵀ·B[k,n]. */
  mmTA(c: Buf, a: Buf, b: Buf, m: number, n: number, k: number, accumulate = false): void {
    this.gemm(0, m, n, k, a.ptr, 1, m, b.ptr, n, c.ptr, n, accumulate ? 1 : 0);
  }

  /** C[m,n] = A[m,k]·B[n,k]ᵀ. */
  mmTB(c: Buf, a: Buf, b: Buf, m: number, n: number, k: number): void {
    const bt = this.transpose(b, n, k);
    this.mm(c, a, bt, m, n, k);
  }

  /** A new [cols, rows] buffer holding the transpose of `a` [rows, cols]. */
  transpose(a: Buf, rows: number, cols: number): Buf {
    const out = this.arena.alloc(rows * cols);
    transposeInto(out.data, 0, rows, a.data, 0, cols, rows, cols);
    return out;
  }
}

/** out[c·ldOut + r] = src[r·ldSrc + c] for a rows × cols block, offsets in floats. */
export function transposeInto(
  out: Float32Array,
  outOffset: number,
  ldOut: number,
  src: Float32Array,
  srcOffset: number,
  ldSrc: number,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = srcOffset + r * ldSrc;
    for (let c = 0; c < cols; c++) out[outOffset + c * ldOut + r] = src[s + c]!;
  }
}
