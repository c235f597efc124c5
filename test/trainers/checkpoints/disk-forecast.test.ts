import { describe, expect, it } from "vitest";
import {
  bytesStillNeeded,
  type CheckpointSizes,
  checkpointsToCome,
  type DiskForecastInput,
  estimateCheckpoint,
  forecastDisk,
  megabytes,
  onDiskBytes,
} from "../../../src/trainers/checkpoints/disk-forecast";

const MB = 1024 * 1024;
/** Sizes in whole megabytes with a block size of 0, so the arithmetic reads plainly. */
const sizes = (checkpointMb: number, finalMb: number): CheckpointSizes => ({
  checkpointBytes: checkpointMb * MB,
  checkpointFiles: 5,
  finalBytes: finalMb * MB,
  finalFiles: 2,
});

function input(overrides: Partial<DiskForecastInput> = {}): DiskForecastInput {
  return {
    freeBytes: 1000 * MB,
    blockBytes: 0,
    sizes: sizes(100, 30),
    checkpointsOnDisk: 0,
    checkpointsToCome: 10,
    keepLast: 3,
    keepsBest: false,
    ...overrides,
  };
}

describe("bytesStillNeeded", () => {
  it.each([
    // A fresh run of 10 checkpoints keeping 3: 4 at once while the 4th is written.
    [{}, 400, 4],
    // Keeping the best as well: 5 at once.
    [{ keepsBest: true }, 500, 5],
    // Two already on disk: two more at the peak.
    [{ checkpointsOnDisk: 2 }, 200, 4],
    // One checkpoint to come: it, then the final adapter beside it.
    [{ checkpointsToCome: 1 }, 130, 1],
    [{ checkpointsToCome: 1, checkpointsOnDisk: 3 }, 100, 4],
    // Nothing to come: only the final adapter.
    [{ checkpointsToCome: 0, checkpointsOnDisk: 3 }, 30, 3],
    // More on disk than kept (left by an earlier attempt): the first save adds one, then prunes.
    [{ checkpointsOnDisk: 6 }, 100, 7],
    // The final adapter is bigger than a checkpoint (pretraining without optimizer moments kept).
    [{ sizes: sizes(10, 500), checkpointsToCome: 2 }, 520, 2],
  ])("%j needs %i MB more, %i folders at the peak", (overrides, mb, peak) => {
    const needed = bytesStillNeeded(input(overrides));
    expect(needed.bytes).toBe(mb * MB);
    expect(needed.peakFolders).toBe(peak);
  });

  it("counts a block per file and per folder", () => {
    expect(onDiskBytes(1000, 5, 4096, true)).toBe(1000 + 6 * 4096);
    expect(onDiskBytes(1000, 2, 4096, false)).toBe(1000 + 2 * 4096);
    const needed = bytesStillNeeded(input({ blockBytes: 4096, checkpointsToCome: 1 }));
    expect(needed.checkpointBytes).toBe(100 * MB + 6 * 4096);
    expect(needed.finalBytes).toBe(30 * MB + 2 * 4096);
    expect(needed.bytes).toBe(needed.checkpointBytes + needed.finalBytes);
  });
});

describe("forecastDisk", () => {
  it("fits, warns with the figures, or finds no room for one checkpoint", () => {
    expect(forecastDisk(input())).toEqual({ verdict: "fits", neededBytes: 400 * MB });
    expect(forecastDisk(input({ freeBytes: 399 * MB }))).toEqual({
      verdict: "short",
      neededBytes: 400 * MB,
      message:
        "this run will not fit on the task folder's disk: it needs about 400 MB more (up to 4 checkpoints of 100 MB at once, then the final 30 MB) and 399 MB are free; free some space or keep fewer checkpoints, or it will fail when the disk is full",
    });
    expect(forecastDisk(input({ freeBytes: 99 * MB }))).toEqual({
      verdict: "no-room",
      neededBytes: 400 * MB,
      message:
        "not enough disk space for one checkpoint: it takes about 100 MB and 99 MB are free on the task folder's disk",
    });
  });

  it("never finds no room when no checkpoint is to come", () => {
    const verdict = forecastDisk(input({ checkpointsToCome: 0, freeBytes: 10 * MB }));
    expect(verdict.verdict).toBe("short");
  });

  // Over a grid of every input: the verdict is consistent with the bytes needed, and more free
  // space never makes it worse.
  it("is consistent and monotonic in the free space", () => {
    const rank = { fits: 0, short: 1, "no-room": 2 } as const;
    const wrong: string[] = [];
    for (const checkpointsOnDisk of [0, 1, 3, 5])
      for (const checkpointsToCome of [0, 1, 2, 5])
        for (const keepLast of [1, 2, 3])
          for (const keepsBest of [false, true])
            for (const [c, f] of [
              [100, 30],
              [10, 500],
            ] as const) {
              let previous = 3;
              for (let free = 0; free <= 1200; free += 10) {
                const given = input({
                  freeBytes: free * MB,
                  sizes: sizes(c, f),
                  checkpointsOnDisk,
                  checkpointsToCome,
                  keepLast,
                  keepsBest,
                });
                const v = forecastDisk(given);
                const needed = bytesStillNeeded(given).bytes;
                const expected =
                  checkpointsToCome > 0 && free * MB < c * MB
                    ? "no-room"
                    : needed > free * MB
                      ? "short"
                      : "fits";
                if (v.verdict !== expected || rank[v.verdict] > previous) {
                  wrong.push(JSON.stringify({ given, v }));
                }
                previous = rank[v.verdict];
              }
            }
    expect(wrong.slice(0, 3)).toEqual([]);
  });
});

describe("checkpointsToCome", () => {
  it("counts the saves left, by brute force over small runs", () => {
    const wrong: string[] = [];
    for (let total = 0; total <= 30; total++)
      for (let save = 1; save <= 12; save++)
        for (let step = 0; step <= total + 2; step++)
          for (const savesAtEnd of [false, true]) {
            let expected = 0;
            for (let s = step + 1; s <= total; s++) {
              if (s % save === 0 || (savesAtEnd && s === total)) expected++;
            }
            const got = checkpointsToCome(step, total, save, savesAtEnd);
            if (got !== expected)
              wrong.push(`${step}/${total} every ${save} ${savesAtEnd}: ${got}`);
          }
    expect(wrong.slice(0, 3)).toEqual([]);
  });
});

describe("estimateCheckpoint and megabytes", () => {
  it("estimates the weights and two AdamW moments, plus small files", () => {
    expect(estimateCheckpoint(MB)).toEqual({
      checkpointBytes: 3 * MB + 64 * 1024,
      checkpointFiles: 8,
      finalBytes: MB + 16 * 1024,
      finalFiles: 2,
    });
  });

  it("writes small sizes in KB, then with a decimal", () => {
    expect(megabytes(0)).toBe("0 KB");
    expect(megabytes(1)).toBe("1 KB");
    expect(megabytes(MB - 1)).toBe("1024 KB");
    expect(megabytes(MB)).toBe("1.0 MB");
    expect(megabytes(1.25 * MB)).toBe("1.3 MB");
    expect(megabytes(9.94 * MB)).toBe("9.9 MB");
    expect(megabytes(10 * MB)).toBe("10 MB");
    expect(megabytes(1536 * MB)).toBe("1536 MB");
  });
});
