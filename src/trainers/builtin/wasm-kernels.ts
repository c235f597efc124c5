import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DIST_DIR } from "../../platform/package-root";

/**
 * Loads the hand-written WebAssembly matrix kernel (kernels.wat, assembled by the build into
 * dist/builtin-kernels.wasm) over a shared memory, so worker threads can run the same kernel on
 * the same buffers.
 */

export const KERNELS_FILE = "builtin-kernels.wasm";
/** 1 GiB of address space at most; memory grows to what a shape needs. */
const MAX_PAGES = 16384;
const PAGE_BYTES = 65536;

export type GemmFn = (
  i0: number,
  i1: number,
  n: number,
  k: number,
  a: number,
  sai: number,
  sap: number,
  b: number,
  ldb: number,
  c: number,
  ldc: number,
  acc: number,
) => void;

/** In dist/, whether the code runs from the bundles or from source (tests). */
export function kernelsPath(): string {
  const found = join(DIST_DIR, KERNELS_FILE);
  if (!existsSync(found)) {
    throw new Error(
      `the built-in trainer's kernels (${KERNELS_FILE}) are missing; run node scripts/build-node.mjs`,
    );
  }
  return found;
}

export function compileKernels(): WebAssembly.Module {
  return new WebAssembly.Module(readFileSync(kernelsPath()));
}

export function newSharedMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
}

/** The element-wise kernels; pointers are byte addresses, `n` counts floats. */
export interface Elementwise {
  /** x = max(x, 0). */
  relu(x: number, n: number): void;
  /** dy = 0 where y ≤ 0. */
  relu_backward(dy: number, y: number, n: number): void;
  /** out = a + b·s. */
  add_scaled(out: number, a: number, b: number, s: number, n: number): void;
  /** out = a·b. */
  mul(out: number, a: number, b: number, n: number): void;
}

export interface Kernels {
  gemm: GemmFn;
  elementwise: Elementwise;
}

export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): Kernels {
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  return { gemm: exports.gemm as GemmFn, elementwise: exports as unknown as Elementwise };
}

/** A run of floats in the kernels' memory: its byte address and a view of it. */
export interface Buf {
  ptr: number;
  data: Float32Array;
}

/**
 * Bump allocation in the shared memory. A shared memory's buffer is never detached when it
 * grows, so views handed out earlier stay valid. `top`/`reset` bracket a step's temporaries.
 */
export class Arena {
  private next = 64;

  constructor(private readonly memory: WebAssembly.Memory) {}

  alloc(length: number): Buf {
    const ptr = this.next;
    // 16-byte alignment keeps vector loads aligned where the shapes allow it.
    const end = ptr + Math.ceil((length * 4) / 16) * 16;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE_BYTES);
      if (have / PAGE_BYTES + pages > MAX_PAGES) {
        throw new Error(
          `the built-in trainer needs more than ${(MAX_PAGES * PAGE_BYTES) / 2 ** 30} GiB for this shape; lower batch size or max length`,
        );
      }
      this.memory.grow(pages);
    }
    this.next = end;
    return { ptr, data: new Float32Array(this.memory.buffer, ptr, length) };
  }

  /** A zero-filled allocation. */
  zeros(length: number): Buf {
    const buf = this.alloc(length);
    buf.data.fill(0);
    return buf;
  }

  get top(): number {
    return this.next;
  }

  reset(top: number): void {
    this.next = top;
  }
}
