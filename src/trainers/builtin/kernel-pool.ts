import { existsSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { DIST_DIR } from "../../platform/package-root";
import type { AttentionBackwardPtrs, AttentionShape } from "./attention";
import {
  CONTROL,
  JOB_ATTENTION_BACKWARD,
  JOB_ATTENTION_FORWARD,
  JOB_GEMM,
  type JobThread,
  runChunks,
} from "./pool-jobs";
import { type Elementwise, type GemmFn, instantiateKernels } from "./wasm-kernels";

/**
 * The calling thread plus `threads − 1` kernel threads over one shared memory. A job is handed
 * out through a shared control block and the caller blocks (Atomics.wait) until every kernel
 * thread has reported; a kernel thread that fails or exits makes the job, and every later one,
 * throw instead of hanging.
 */

export const WORKER_FILE = "builtin-kernel-worker.js";
/** Products smaller than this many multiply-adds run on the calling thread alone. */
const PARALLEL_MIN_WORK = 1 << 16;
/**
 * A kernel thread silent this long on one job has died without a word (while the caller blocks,
 * no exit event can reach it); the job fails. Jobs take milliseconds.
 */
const JOB_DEADLINE_MS = 120_000;

export interface KernelPoolOptions {
  /** The kernel thread program; dist/builtin-kernel-worker.js unless given. */
  workerFile?: string;
  jobDeadlineMs?: number;
}

function workerPath(): string {
  const found = join(DIST_DIR, WORKER_FILE);
  if (!existsSync(found))
    throw new Error(`${WORKER_FILE} is missing; run node scripts/build-node.mjs`);
  return found;
}

export class KernelPool {
  readonly gemm: GemmFn;
  /** Element-wise kernels, on the calling thread. */
  readonly elementwise: Elementwise;
  private readonly local: JobThread;
  private readonly control = new Int32Array(
    new SharedArrayBuffer(CONTROL.length * Int32Array.BYTES_PER_ELEMENT),
  );
  private readonly workers: Worker[] = [];
  private failure: Error | null = null;
  private view: Float32Array;

  constructor(
    module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    readonly threads: number,
    private readonly options: KernelPoolOptions = {},
  ) {
    const { gemm: localGemm, elementwise } = instantiateKernels(module, memory);
    this.elementwise = elementwise;
    this.view = new Float32Array(memory.buffer);
    this.local = { index: 0, gemm: localGemm, heap: () => this.heap() };
    const file = options.workerFile ?? (threads > 1 ? workerPath() : "");
    for (let index = 1; index < threads; index++) {
      const worker = new Worker(file, {
        workerData: { index, module, memory, control: this.control.buffer },
      });
      worker.unref();
      worker.on("message", (message: { failed?: string }) => {
        if (message.failed) this.fail(`kernel thread ${index} failed: ${message.failed}`);
      });
      worker.on("error", (err) => this.fail(`kernel thread ${index} failed: ${err.message}`));
      worker.on("exit", (code) => this.fail(`kernel thread ${index} exited (code ${code})`));
      this.workers.push(worker);
    }
    this.gemm = (i0, i1, n, k, a, sai, sap, b, ldb, c, ldc, acc) => {
      const rows = i1 - i0;
      if (this.workers.length === 0 || rows * n * k < PARALLEL_MIN_WORK) {
        localGemm(i0, i1, n, k, a, sai, sap, b, ldb, c, ldc, acc);
        return;
      }
      // About 16 chunks of whole 4-row tiles, from the row count alone.
      const size = Math.max(4, 4 * Math.ceil(rows / 64));
      this.run(JOB_GEMM, size, [i0, i1, n, k, a, sai, sap, b, ldb, c, ldc, acc]);
    };
  }

  /** A view of the whole memory as it is now (it grows). */
  heap(): Float32Array {
    if (this.view.byteLength !== this.memory.buffer.byteLength) {
      this.view = new Float32Array(this.memory.buffer);
    }
    return this.view;
  }

  /** Attention over every (sequence, head) pair, one pair a chunk; `scratch` holds `perThread` floats for each thread. */
  attention(
    backward: boolean,
    shape: AttentionShape,
    ptr: Omit<AttentionBackwardPtrs, "dAtt" | "dq" | "dk" | "dv"> &
      Partial<Pick<AttentionBackwardPtrs, "dAtt" | "dq" | "dk" | "dv">>,
    scratch: number,
    perThread: number,
  ): void {
    const args = [
      shape.batch,
      shape.time,
      shape.dModel,
      shape.nHeads,
      ptr.q,
      ptr.k,
      ptr.v,
      ptr.probs,
      ptr.att,
      ptr.dAtt ?? 0,
      ptr.dq ?? 0,
      ptr.dk ?? 0,
      scratch,
      perThread,
      ptr.dv ?? 0,
    ];
    this.run(backward ? JOB_ATTENTION_BACKWARD : JOB_ATTENTION_FORWARD, 1, args);
  }

  private fail(message: string): void {
    this.failure ??= new Error(message);
  }

  private run(kind: number, chunkSize: number, args: number[]): void {
    if (this.failure) throw this.failure;
    const c = this.control;
    c[CONTROL.kind] = kind;
    c[CONTROL.chunkSize] = chunkSize;
    for (let i = 0; i < args.length; i++) c[CONTROL.args + i] = args[i]!;
    Atomics.store(c, CONTROL.nextChunk, 0);
    Atomics.store(c, CONTROL.done, 0);
    Atomics.store(c, CONTROL.failed, 0);
    Atomics.add(c, CONTROL.generation, 1);
    Atomics.notify(c, CONTROL.generation);
    let localError: unknown = null;
    try {
      runChunks(c, this.local);
    } catch (err) {
      localError = err;
    }
    // Wait for every kernel thread, even after a local failure: none may still be writing.
    const limit = this.options.jobDeadlineMs ?? JOB_DEADLINE_MS;
    const deadline = Date.now() + limit;
    for (;;) {
      const done = Atomics.load(c, CONTROL.done);
      if (done >= this.workers.length) break;
      if (Date.now() > deadline) {
        this.fail(`a kernel thread did not finish its job in ${limit / 1000} s`);
        throw this.failure;
      }
      Atomics.wait(c, CONTROL.done, done, 1000);
    }
    if (localError) throw localError;
    if (Atomics.load(c, CONTROL.failed) !== 0) {
      this.fail("a kernel thread failed (its message follows in the log)");
      throw this.failure;
    }
  }

  async close(): Promise<void> {
    Atomics.store(this.control, CONTROL.stop, 1);
    Atomics.add(this.control, CONTROL.generation, 1);
    Atomics.notify(this.control, CONTROL.generation);
    const workers = this.workers.splice(0);
    this.failure ??= new Error("the kernel pool is closed");
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
