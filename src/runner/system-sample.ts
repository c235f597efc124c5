/**
 * One line of `system.jsonl`: what an attempt's processes used at one moment, written by the
 * runner (./system-sampler) and read by the studio (record-schemas.ts) for the page's charts.
 */
export const SYSTEM_SAMPLES_FILE = "system.jsonl";
export const SYSTEM_SAMPLE_VERSION = 1;

export interface GpuSample {
  index: number;
  utilizationPercent: number | null;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  powerWatts: number | null;
}

export interface SystemSample {
  version: typeof SYSTEM_SAMPLE_VERSION;
  attempt: number;
  /** Unix seconds. */
  time: number;
  /** CPU used since the previous sample, 100 = one core busy. */
  cpuPercent: number;
  /** Resident memory of the trainer and every process it started. */
  memoryBytes: number;
  processes: number;
  /** With nvidia-smi: the attempt's GPUs. */
  gpus?: GpuSample[];
}
