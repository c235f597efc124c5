import { deriveSeed, Rng } from "./rng";
import { EOS } from "./tokenizer";

/**
 * How rows become batches: a seeded hold-out split, a fresh seeded order each epoch (derived
 * from seed and epoch alone, so a resumed run needs only the epoch and the batch index), and
 * right-padded [batch, time] arrays with −1 targets where no loss is counted.
 */

const SPLIT_STREAM = 1;
const ORDER_STREAM = 2;

export function splitEval(
  rowCount: number,
  evalSplit: number,
  seed: number,
): { train: number[]; eval: number[] } {
  const order = new Rng(deriveSeed(seed, SPLIT_STREAM)).permutation(rowCount);
  const evalCount = rowCount < 2 ? 0 : Math.min(rowCount - 1, Math.floor(rowCount * evalSplit));
  return { eval: order.slice(0, evalCount).sort((a, b) => a - b), train: order.slice(evalCount) };
}

export function stepsPerEpoch(trainCount: number, batchSize: number): number {
  return Math.ceil(trainCount / batchSize);
}

/** Positions into the training rows, in the order epoch `epoch` (0-based) visits them. */
export function epochOrder(trainCount: number, seed: number, epoch: number): number[] {
  return new Rng(deriveSeed(seed, ORDER_STREAM, epoch)).permutation(trainCount);
}

export interface Batch {
  ids: Int32Array;
  targets: Int32Array;
  batch: number;
  time: number;
  /** Positions whose next token counts toward the loss. */
  tokenCount: number;
}

/** Inputs are each sequence but its last token, targets each but its first. */
export function makeBatch(sequences: number[][]): Batch {
  const time = Math.max(1, ...sequences.map((s) => s.length - 1));
  const batch = sequences.length;
  const ids = new Int32Array(batch * time).fill(EOS);
  const targets = new Int32Array(batch * time).fill(-1);
  let tokenCount = 0;
  sequences.forEach((sequence, row) => {
    for (let t = 0; t < sequence.length - 1; t++) {
      ids[row * time + t] = sequence[t]!;
      targets[row * time + t] = sequence[t + 1]!;
      tokenCount++;
    }
  });
  return { ids, targets, batch, time, tokenCount };
}
