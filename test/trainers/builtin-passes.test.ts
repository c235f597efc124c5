import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { makeBatch } from "../../src/trainers/builtin/batches";
import { type Engine, openEngine, threadsFromEnvironment } from "../../src/trainers/builtin/engine";
import { KernelPool } from "../../src/trainers/builtin/kernel-pool";
import { LinearAlgebra } from "../../src/trainers/builtin/linalg";
import { initLoraWeights, loraPass, loraWeightName } from "../../src/trainers/builtin/lora";
import { initWeights, type ModelConfig } from "../../src/trainers/builtin/model";
import { Rng } from "../../src/trainers/builtin/rng";
import { encodeForTraining } from "../../src/trainers/builtin/tokenizer";
import type { LoraPass, Transformer } from "../../src/trainers/builtin/transformer";
import { Arena, compileKernels, newSharedMemory } from "../../src/trainers/builtin/wasm-kernels";

/** The hand-written passes: the WebAssembly kernel, the gradients, and the kernel threads. */

const engines: Engine[] = [];
async function engine(threads: number): Promise<Engine> {
  const opened = await openEngine(threads);
  engines.push(opened);
  return opened;
}
afterAll(async () => {
  for (const e of engines) await e.close();
});

function randomArray(rng: Rng, length: number): Float32Array {
  return Float32Array.from({ length }, () => rng.normal());
}

describe("the matrix kernel", () => {
  test("matches a double-precision product for A·B, Aᵀ·B and A·Bᵀ, edges and accumulation included", () => {
    const memory = newSharedMemory();
    const arena = new Arena(memory);
    const pool = new KernelPool(compileKernels(), memory, 1);
    const la = new LinearAlgebra(pool.gemm, arena);
    const rng = new Rng(1);
    // 4-row and 8-column tiles, and shapes that leave rows and columns over.
    for (const [m, n, k] of [
      [8, 16, 5],
      [7, 13, 3],
      [1, 1, 2],
      [12, 9, 17],
    ] as const) {
      const a = arena.alloc(m * k);
      a.data.set(randomArray(rng, m * k));
      const b = arena.alloc(k * n);
      b.data.set(randomArray(rng, k * n));
      const at = la.transpose(a, m, k);
      const bt = la.transpose(b, k, n);
      const expected = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          for (let p = 0; p < k; p++)
            expected[i * n + j]! += a.data[i * k + p]! * b.data[p * n + j]!;
        }
      }
      const close = (c: Float32Array, factor = 1) => {
        for (let i = 0; i < m * n; i++) {
          expect(Math.abs(c[i]! - factor * expected[i]!), `${m}×${n}×${k} at ${i}`).toBeLessThan(
            1e-5,
          );
        }
      };
      const c = arena.alloc(m * n);
      la.mm(c, a, b, m, n, k);
      close(c.data);
      la.mmTA(c, at, b, m, n, k, true);
      close(c.data, 2);
      la.mmTB(c, a, bt, m, n, k);
      close(c.data);
      // Rows computed in two calls equal rows computed in one, bit for bit.
      const whole = Float32Array.from(c.data);
      const split = Math.floor(m / 2);
      pool.gemm(0, split, n, k, a.ptr, k, 1, b.ptr, n, c.ptr, n, 0);
      pool.gemm(split, m, n, k, a.ptr, k, 1, b.ptr, n, c.ptr, n, 0);
      expect(Array.from(c.data)).toEqual(Array.from(whole));
    }
  });
});

const config: ModelConfig = {
  vocabSize: 258,
  dModel: 8,
  nLayers: 2,
  nHeads: 2,
  dFF: 16,
  contextLength: 40,
};
const settings = {
  rank: 2,
  alpha: 4,
  dropout: 0,
  targetModules: ["q_proj", "v_proj", "down_proj"],
};
// Lengths past one attention block (16 rows) and not a multiple of it.
const batch = makeBatch([
  encodeForTraining("the quick brown fox jumps over the lazy dog", 40),
  encodeForTraining("xyz", 40),
]);

/** Larger projections and perturbed norms than at initialisation: gradients of some size. */
function sizableWeights(seed: number): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  const rng = new Rng(seed);
  for (const [name, t] of initWeights(config, seed)) {
    const scaled = name.includes("proj") ? t.data.map((v) => v * 20) : t.data;
    weights.set(name, name.includes("norm") ? scaled.map((v) => v + rng.normal() * 0.1) : scaled);
  }
  return weights;
}

function load(model: Transformer, weights: Map<string, { data: Float32Array }>) {
  for (const [name, t] of weights) model.setWeight(name, t.data);
}

/**
 * Directional derivative along each weight's gradient, by central differences, equals the
 * gradient's norm. Small steps, so no ReLU kink is crossed; weights big enough for gradients
 * well above float32 round-off.
 */
function checkGradients(
  model: Transformer,
  weights: Map<string, Float32Array>,
  lora: LoraPass | null,
) {
  const loss = () => model.lossSum(batch, batch.targets, lora) / batch.tokenCount;
  const { grads } = model.lossAndGradients(batch, batch.targets, batch.tokenCount, lora, [
    ...weights.keys(),
  ]);
  for (const [name, value] of weights) {
    const grad = grads.get(name)!;
    const norm = Math.sqrt(grad.reduce((s, g) => s + g * g, 0));
    expect(norm, name).toBeGreaterThan(1e-5);
    const eps = 1e-3;
    const moved = (sign: number) => {
      model.setWeight(
        name,
        value.map((v, i) => v + (sign * eps * grad[i]!) / norm),
      );
      return loss();
    };
    const numeric = (moved(1) - moved(-1)) / (2 * eps);
    model.setWeight(name, value);
    expect(Math.abs(numeric - norm) / norm, name).toBeLessThan(1e-2);
  }
}

describe("the passes", () => {
  test("the adapters start at the base model (B = 0)", async () => {
    const model = (await engine(1)).transformer(config);
    load(model, initWeights(config, 5));
    const plain = model.lossSum(batch, batch.targets, null);
    load(model, initLoraWeights(config, settings, new Rng(1)));
    expect(model.lossSum(batch, batch.targets, loraPass(settings, null))).toBe(plain);
    expect(model.hasWeight(loraWeightName("model.layers.0.self_attn.q_proj", "A"))).toBe(true);
  });

  test("gradients through the adapters agree with finite differences", async () => {
    const model = (await engine(1)).transformer(config);
    for (const [name, data] of sizableWeights(5)) model.setWeight(name, data);
    const rng = new Rng(9);
    const adapter = new Map<string, Float32Array>();
    for (const [name, t] of initLoraWeights(config, settings, rng)) {
      // Non-zero B so that A's gradient is not trivially zero.
      adapter.set(name, name.includes("lora_B") ? t.data.map(() => rng.normal() * 0.5) : t.data);
    }
    for (const [name, data] of adapter) model.setWeight(name, data);
    checkGradients(model, adapter, loraPass(settings, null));
  });

  test("gradients of every weight (pretraining) agree with finite differences", async () => {
    const model = (await engine(1)).transformer(config);
    const weights = sizableWeights(6);
    for (const [name, data] of weights) model.setWeight(name, data);
    checkGradients(model, weights, null);
  });
});

describe("kernel threads", () => {
  test("one and two threads give bit-identical losses and gradients, dropout included", async () => {
    const shape: ModelConfig = { ...config, dModel: 32, nHeads: 4, dFF: 64 };
    const withDropout = { ...settings, dropout: 0.1, rank: 4 };
    const run = async (threads: number) => {
      const model = (await engine(threads)).transformer(shape);
      load(model, initWeights(shape, 3));
      const adapter = initLoraWeights(shape, withDropout, new Rng(2));
      const rng = new Rng(8);
      for (const [name, t] of adapter) {
        model.setWeight(name, name.includes("lora_B") ? t.data.map(() => rng.normal()) : t.data);
      }
      const rows = Array.from({ length: 6 }, (_, i) =>
        encodeForTraining(`row ${i}: ${"some text to learn from ".repeat(i + 1)}`, 40),
      );
      const input = makeBatch(rows);
      return model.lossAndGradients(
        input,
        input.targets,
        input.tokenCount,
        loraPass(withDropout, new Rng(11)),
        [...adapter.keys()],
      );
    };
    const one = await run(1);
    const two = await run(2);
    expect(two.loss).toBe(one.loss);
    for (const [name, grad] of one.grads) {
      expect(Buffer.from(two.grads.get(name)!.buffer).equals(Buffer.from(grad.buffer)), name).toBe(
        true,
      );
    }
  });

  test("a kernel thread that dies fails the job, and every later one, with a clear error", async () => {
    const memory = newSharedMemory();
    const arena = new Arena(memory);
    const pool = new KernelPool(compileKernels(), memory, 2, {
      workerFile: join(
        import.meta.dirname,
        "..",
        "fixtures",
        "builtin",
        "exiting-kernel-worker.mjs",
      ),
      jobDeadlineMs: 2000,
    });
    const la = new LinearAlgebra(pool.gemm, arena);
    const a = arena.zeros(256 * 64);
    const b = arena.zeros(64 * 64);
    const c = arena.alloc(256 * 64);
    expect(() => la.mm(c, a, b, 256, 64, 64)).toThrow(/kernel thread did not finish its job/);
    expect(() => la.mm(c, a, b, 256, 64, 64)).toThrow(/kernel thread/);
    await pool.close();
  });

  test("STUDIO_BUILTIN_THREADS chooses the count; a bad value is refused", () => {
    expect(threadsFromEnvironment({}, 2)).toBe(2);
    expect(threadsFromEnvironment({}, 32)).toBe(4);
    expect(threadsFromEnvironment({ STUDIO_BUILTIN_THREADS: "3" }, 2)).toBe(3);
    expect(() => threadsFromEnvironment({ STUDIO_BUILTIN_THREADS: "0" })).toThrow(
      /STUDIO_BUILTIN_THREADS must be a whole number/,
    );
    expect(() => threadsFromEnvironment({ STUDIO_BUILTIN_THREADS: "two" })).toThrow(
      /STUDIO_BUILTIN_THREADS/,
    );
  });
});
