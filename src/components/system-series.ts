import type { SystemSample } from "../runner/system-sample";

export type SystemPoint = {
  /** Minutes since the first sample shown. */
  minutes: number;
  cpuPercent: number;
  memoryMB: number;
  /** `gpu<index>`: that GPU's utilisation in percent. */
  [gpu: `gpu${number}`]: number | null;
};

/** Chart points from the runner's samples, and the GPU indices that appear in them. */
export function systemSeries(samples: SystemSample[]): { points: SystemPoint[]; gpus: number[] } {
  const first = samples[0]?.time ?? 0;
  const gpus = new Set<number>();
  const points = samples.map((s) => {
    const point: SystemPoint = {
      minutes: Math.round(((s.time - first) / 60) * 100) / 100,
      cpuPercent: s.cpuPercent,
      memoryMB: Math.round(s.memoryBytes / 1e6),
    };
    for (const gpu of s.gpus ?? []) {
      gpus.add(gpu.index);
      point[`gpu${gpu.index}`] = gpu.utilizationPercent;
    }
    return point;
  });
  return { points, gpus: [...gpus].sort((a, b) => a - b) };
}
