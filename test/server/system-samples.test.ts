import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { systemSeries } from "../../src/components/system-series";
import { parseSystemSample } from "../../src/runner/record-schemas";
import { parseNvidiaSmi } from "../../src/runner/system-sampler";
import { readSystemSamples, thin } from "../../src/server/tasks/system-samples";

const sample = (time: number, extra: object = {}) => ({
  version: 1,
  attempt: 1,
  time,
  cpuPercent: 150.5,
  memoryBytes: 2_000_000,
  processes: 3,
  ...extra,
});

describe("system samples", () => {
  it("reads nvidia-smi's CSV (the format its --query-gpu documentation gives), keeping the visible GPUs", () => {
    // Written in the documented shape of `--format=csv,noheader,nounits`, not recorded here:
    // this machine has no GPU.
    const csv = "0, 87, 30512, 81559, 301.25\n1, 0, 4, 81559, [N/A]\n";
    expect(parseNvidiaSmi(csv, undefined)).toEqual([
      {
        index: 0,
        utilizationPercent: 87,
        memoryUsedMiB: 30512,
        memoryTotalMiB: 81559,
        powerWatts: 301.25,
      },
      {
        index: 1,
        utilizationPercent: 0,
        memoryUsedMiB: 4,
        memoryTotalMiB: 81559,
        powerWatts: null,
      },
    ]);
    expect(parseNvidiaSmi(csv, "1").map((g) => g.index)).toEqual([1]);
    // A CPU slot hides every GPU (CUDA_VISIBLE_DEVICES=""): none reported.
    expect(parseNvidiaSmi(csv, "")).toEqual([]);
    expect(parseNvidiaSmi("NVIDIA-SMI has failed\n", undefined)).toEqual([]);
  });

  it("skips lines that are not a sample, from any cause", () => {
    expect(parseSystemSample(JSON.stringify(sample(1)))).toEqual(sample(1));
    for (const bad of [
      "",
      "{",
      JSON.stringify(sample(1, { version: 2 })),
      JSON.stringify(sample(1, { cpuPercent: -1 })),
      JSON.stringify(sample(1, { attempt: 0 })),
      JSON.stringify({ ...sample(1), memoryBytes: "lots" }),
    ]) {
      expect(parseSystemSample(bad)).toBeNull();
    }
  });

  it("thins evenly, always keeping the latest", () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(thin(items, 20)).toEqual(items);
    expect(thin(items, 5)).toEqual([1, 3, 5, 7, 9]);
    expect(thin(items, 3)).toEqual([1, 5, 9]);
  });

  it("reads the recent end of a real file, past a garbled and a half-written line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "system-samples-"));
    try {
      const path = join(dir, "system.jsonl");
      const lines = [sample(10), "garbled", sample(15), sample(20)].map((l) =>
        typeof l === "string" ? l : JSON.stringify(l),
      );
      writeFileSync(path, `${lines.join("\n")}\n{"version":1,"att`);
      expect((await readSystemSamples(path, 100)).map((s) => s.time)).toEqual([10, 15, 20]);
      expect(await readSystemSamples(join(dir, "absent.jsonl"), 100)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("charts minutes from the first sample, memory in MB, each GPU's utilisation", () => {
    const gpu = { utilizationPercent: 50, memoryUsedMiB: 1, memoryTotalMiB: 2, powerWatts: 3 };
    const series = systemSeries([
      sample(60) as never,
      sample(90, { gpus: [{ index: 2, ...gpu }] }) as never,
    ]);
    expect(series).toEqual({
      gpus: [2],
      points: [
        { minutes: 0, cpuPercent: 150.5, memoryMB: 2 },
        { minutes: 0.5, cpuPercent: 150.5, memoryMB: 2, gpu2: 50 },
      ],
    });
  });
});
