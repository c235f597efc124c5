import { availableParallelism } from "node:os";
import { KernelPool } from "./kernel-pool";
import { LinearAlgebra } from "./linalg";
import type { ModelConfig } from "./model";
import { Transformer } from "./transformer";
import { Arena, compileKernels, newSharedMemory } from "./wasm-kernels";

/**
 * Where the built-in trainer computes: the WebAssembly kernels over one shared memory, on
 * this thread alone or with worker threads that split each product's rows (gemm-pool.ts).
 */

export const THREADS_ENV = "STUDIO_BUILTIN_THREADS";
/** The tiny model stops gaining from threads beyond a few; more would only crowd the machine. */
export const MAX_DEFAULT_THREADS = 4;
const MAX_THREADS = 64;

export interface Engine {
  readonly threads: number;
  transformer(config: ModelConfig): Transformer;
  close(): Promise<void>;
}

/** STUDIO_BUILTIN_THREADS, or the available parallelism up to MAX_DEFAULT_THREADS. */
export function threadsFromEnvironment(
  env: Record<string, string | undefined>,
  available = availableParallelism(),
): number {
  const raw = env[THREADS_ENV];
  if (raw === undefined || raw === "") return Math.max(1, Math.min(available, MAX_DEFAULT_THREADS));
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new Error(`${THREADS_ENV} must be a whole number from 1 to ${MAX_THREADS}, got "${raw}"`);
  }
  return threads;
}

export async function openEngine(threads: number): Promise<Engine> {
  const module = compileKernels();
  const memory = newSharedMemory();
  const arena = new Arena(memory);
  const pool = new KernelPool(module, memory, threads);
  const la = new LinearAlgebra(pool.gemm, arena);
  return {
    threads,
    transformer: (config) => new Transformer(config, arena, la, pool),
    close: () => pool.close(),
  };
}
