import { describe, expect, test } from "vitest";
import {
  epochOrder,
  makeBatch,
  splitEval,
  stepsPerEpoch,
} from "../../src/trainers/builtin/batches";
import {
  adamWStep,
  clipGradNorm,
  DEFAULT_ADAMW,
  initAdamWState,
} from "../../src/trainers/builtin/optimizer";
import { Rng } from "../../src/trainers/builtin/rng";
import { decodeSafetensors, encodeSafetensors } from "../../src/trainers/builtin/safetensors";
import { pickToken } from "../../src/trainers/builtin/sampling";
import { learningRateAt } from "../../src/trainers/builtin/schedule";
import { BOS, decode, EOS, encodeForTraining } from "../../src/trainers/builtin/tokenizer";

describe("safetensors", () => {
  test("round-trips tensors and metadata, with an 8-byte aligned data section", () => {
    const tensors = new Map([
      ["b.weight", { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -0]) }],
      ["a", { shape: [1], data: Float32Array.from([42]) }],
    ]);
    const bytes = encodeSafetensors(tensors, { note: "x" });
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
    expect(header.a).toEqual({ dtype: "F32", shape: [1], data_offsets: [0, 4] });
    expect(header["b.weight"].data_offsets).toEqual([4, 28]);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual({ note: "x" });
    expect(Array.from(decoded.tensors.get("b.weight")!.data)).toEqual(
      Array.from(tensors.get("b.weight")!.data),
    );
    expect(decoded.tensors.get("b.weight")!.shape).toEqual([2, 3]);
  });

  test("refuses a truncated file and a non-F32 dtype", () => {
    const bytes = encodeSafetensors(new Map([["a", { shape: [2], data: new Float32Array(2) }]]));
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 1))).toThrow(/byte range/);
    const header = Buffer.from(
      JSON.stringify({ a: { dtype: "F16", shape: [1], data_offsets: [0, 2] } }),
    );
    const f16 = Buffer.concat([Buffer.alloc(8), header, Buffer.alloc(2)]);
    f16.writeBigUInt64LE(BigInt(header.length), 0);
    expect(() => decodeSafetensors(f16)).toThrow(/F16/);
  });
});

describe("schedule", () => {
  test("warms up linearly then decays linearly to zero", () => {
    // 100 steps, 10% warm-up → 10 warm-up steps.
    expect(learningRateAt(0, 100, 1, 0.1)).toBe(0);
    expect(learningRateAt(5, 100, 1, 0.1)).toBeCloseTo(0.5);
    expect(learningRateAt(10, 100, 1, 0.1)).toBe(1);
    expect(learningRateAt(55, 100, 1, 0.1)).toBeCloseTo(0.5);
    expect(learningRateAt(100, 100, 1, 0.1)).toBe(0);
    expect(learningRateAt(0, 10, 2, 0)).toBe(2);
  });
});

describe("data", () => {
  test("the split and the epoch orders are seeded, disjoint and complete", () => {
    const split = splitEval(50, 0.1, 3);
    expect(split.eval).toHaveLength(5);
    expect([...split.train, ...split.eval].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
    expect(splitEval(50, 0.1, 3)).toEqual(split);
    expect(splitEval(50, 0.1, 4)).not.toEqual(split);
    expect(splitEval(1, 0.5, 3).eval).toEqual([]);
    expect(epochOrder(45, 3, 1)).toEqual(epochOrder(45, 3, 1));
    expect(epochOrder(45, 3, 1)).not.toEqual(epochOrder(45, 3, 2));
    expect(stepsPerEpoch(45, 8)).toBe(6);
  });

  test("batches shift targets by one and pad with ignored positions", () => {
    const a = encodeForTraining("hi", 10);
    expect(a).toEqual([BOS, 104, 105, EOS]);
    expect(encodeForTraining("hello", 3)).toEqual([BOS, 104, 101]);
    const batch = makeBatch([a, [BOS, 120]]);
    expect(batch.time).toBe(3);
    expect(Array.from(batch.ids)).toEqual([BOS, 104, 105, BOS, EOS, EOS]);
    expect(Array.from(batch.targets)).toEqual([104, 105, EOS, 120, -1, -1]);
    expect(batch.tokenCount).toBe(4);
    expect(decode([BOS, 104, 105, EOS])).toBe("hi");
  });
});

describe("optimizer", () => {
  test("AdamW's first step moves each weight by lr against its gradient's sign, after decay", () => {
    const params = new Map([["w", Float32Array.from([1, -1, 0.5])]]);
    const state = initAdamWState(params);
    const grads = new Map([["w", Float32Array.from([0.3, -2, 0])]]);
    adamWStep(params, grads, state, 0.1, { ...DEFAULT_ADAMW, weightDecay: 0.5 });
    const w = params.get("w")!;
    expect(w[0]).toBeCloseTo(1 * (1 - 0.05) - 0.1, 5);
    expect(w[1]).toBeCloseTo(-1 * (1 - 0.05) + 0.1, 5);
    expect(w[2]).toBeCloseTo(0.5 * (1 - 0.05), 5);
    expect(state.step).toBe(1);
  });

  test("clipping scales the global norm down to the limit and leaves small gradients alone", () => {
    const grads = new Map([
      ["a", Float32Array.from([3])],
      ["b", Float32Array.from([4])],
    ]);
    expect(clipGradNorm(grads, 1)).toBeCloseTo(5);
    expect(grads.get("a")![0]).toBeCloseTo(0.6, 5);
    expect(grads.get("b")![0]).toBeCloseTo(0.8, 5);
    expect(clipGradNorm(grads, 10)).toBeCloseTo(1, 5);
    expect(grads.get("a")![0]).toBeCloseTo(0.6, 5);
  });
});

describe("sampling", () => {
  const logits = Float32Array.from([0, 3, 1, 2.5]);
  const draws = (seed: number, temperature: number, topP: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 200 }, () => pickToken(logits, { temperature, topP }, rng));
  };

  test("temperature 0 is greedy, whatever the seed and top-p", () => {
    for (const topP of [0.1, 0.5, 1]) {
      expect(new Set([...draws(1, 0, topP), ...draws(2, 0, topP)])).toEqual(new Set([1]));
    }
  });

  test("sampling follows the seeded generator: the same seed draws the same tokens", () => {
    expect(draws(4, 1, 1)).toEqual(draws(4, 1, 1));
    expect(draws(4, 1, 1)).not.toEqual(draws(5, 1, 1));
    expect(new Set(draws(4, 1, 1))).toEqual(new Set([0, 1, 2, 3]));
  });

  test("top-p keeps only the most likely tokens whose mass reaches p", () => {
    // Probabilities at temperature 1: about 0.03, 0.56, 0.08, 0.34 (tokens 1 and 3 hold 0.9).
    expect(new Set(draws(7, 1, 0.3))).toEqual(new Set([1]));
    expect(new Set(draws(7, 1, 0.85))).toEqual(new Set([1, 3]));
    expect(new Set(draws(7, 1, 0.95))).toEqual(new Set([1, 2, 3]));
  });
});
