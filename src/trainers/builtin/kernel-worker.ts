import { parentPort, workerData } from "node:worker_threads";
import { CONTROL, runChunks } from "./pool-jobs";
import { instantiateKernels } from "./wasm-kernels";

/**
 * A kernel thread (bundled as dist/builtin-kernel-worker.js): its own instance of the kernels
 * over the trainer's shared memory; it sleeps on the control block, runs chunks of each job
 * alongside the trainer's thread, and reports done. A failure is flagged, never swallowed.
 */

interface KernelWorkerData {
  index: number;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
}

const { index, module, memory, control: shared } = workerData as KernelWorkerData;
const control = new Int32Array(shared);
const { gemm } = instantiateKernels(module, memory);
let view = new Float32Array(memory.buffer);
const heap = () => {
  // The memory may have grown since the last job: a view of its current extent.
  if (view.byteLength !== memory.buffer.byteLength) view = new Float32Array(memory.buffer);
  return view;
};

let seen = 0;
for (;;) {
  Atomics.wait(control, CONTROL.generation, seen);
  seen = Atomics.load(control, CONTROL.generation);
  if (Atomics.load(control, CONTROL.stop) !== 0) break;
  try {
    runChunks(control, { index, gemm, heap });
  } catch (err) {
    Atomics.store(control, CONTROL.failed, 1);
    parentPort?.postMessage({
      failed: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  }
  Atomics.add(control, CONTROL.done, 1);
  Atomics.notify(control, CONTROL.done);
}
