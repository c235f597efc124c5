import { type AttentionShape, attentionBackwardUnits, attentionForwardUnits } from "./attention";
import type { GemmFn } from "./wasm-kernels";

/**
 * The jobs the calling thread and the kernel threads share, and the shared control block that
 * describes the current one. A job is split into chunks that depend only on its shape; each
 * thread takes the next chunk from a shared counter until none is left. Which thread computes a
 * chunk never changes what it computes, so results are the same for any number of threads.
 */

export const JOB_GEMM = 1;
export const JOB_ATTENTION_FORWARD = 2;
export const JOB_ATTENTION_BACKWARD = 3;

/** Slots of the control block (an Int32Array over a SharedArrayBuffer). */
export const CONTROL = {
  /** Bumped to start a job; kernel threads wait on it. */
  generation: 0,
  /** Next chunk to take. */
  nextChunk: 1,
  /** Kernel threads done with the current job. */
  done: 2,
  /** Set when a kernel thread failed the current job. */
  failed: 3,
  /** Set to make kernel threads exit. */
  stop: 4,
  kind: 5,
  chunkSize: 6,
  /** The job's arguments from here on. */
  args: 8,
  length: 32,
} as const;

/** What a thread computes with: its kernel instance, a current view of memory, its scratch. */
export interface JobThread {
  index: number;
  gemm: GemmFn;
  heap(): Float32Array;
}

/** Takes and runs chunks of the current job until none is left. */
export function runChunks(control: Int32Array, thread: JobThread): void {
  const kind = control[CONTROL.kind]!;
  const size = control[CONTROL.chunkSize]!;
  const a = CONTROL.args;
  const arg = (i: number) => control[a + i]!;
  for (;;) {
    const chunk = Atomics.add(control, CONTROL.nextChunk, 1);
    if (kind === JOB_GEMM) {
      const start = arg(0) + chunk * size;
      if (start >= arg(1)) return;
      const end = Math.min(arg(1), start + size);
      thread.gemm(
        start,
        end,
        arg(2),
        arg(3),
        arg(4),
        arg(5),
        arg(6),
        arg(7),
        arg(8),
        arg(9),
        arg(10),
        arg(11),
      );
      continue;
    }
    // Attention: args are the shape (4), the pointers, then scratch base and floats per thread.
    const shape: AttentionShape = { batch: arg(0), time: arg(1), dModel: arg(2), nHeads: arg(3) };
    const units = shape.batch * shape.nHeads;
    const u0 = chunk * size;
    if (u0 >= units) return;
    const u1 = Math.min(units, u0 + size);
    const scratch = arg(12) + thread.index * arg(13) * 4;
    const ptrs = {
      q: arg(4),
      k: arg(5),
      v: arg(6),
      probs: arg(7),
      att: arg(8),
      dAtt: arg(9),
      dq: arg(10),
      dk: arg(11),
      dv: arg(14),
    };
    if (kind === JOB_ATTENTION_FORWARD) {
      attentionForwardUnits(thread.heap(), thread.gemm, shape, ptrs, scratch, u0, u1);
    } else {
      attentionBackwardUnits(thread.heap(), thread.gemm, shape, ptrs, scratch, u0, u1);
    }
  }
}
