import { execFile } from "node:child_process";
import { appendFile, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseStat } from "../platform/identity";
import {
  type GpuSample,
  SYSTEM_SAMPLE_VERSION,
  SYSTEM_SAMPLES_FILE,
  type SystemSample,
} from "./system-sample";

/**
 * The runner samples what its trainer uses (CPU, memory, and with `nvidia-smi` the GPUs) every
 * few seconds into `system.jsonl` in the task folder: the runner outlives the studio, so the
 * record has no gap across studio restarts. Best effort: a sample that cannot be taken or
 * written (a full disk) is skipped, and nothing here can touch the trainer.
 */

/** USER_HZ: the unit of /proc's CPU times, 100 on every Linux architecture the studio runs on. */
const CLOCK_TICKS_PER_SECOND = 100;
/** How long one nvidia-smi call may take before its sample goes without GPUs. */
const NVIDIA_SMI_TIMEOUT_MS = 5_000;

const GPU_QUERY = "index,utilization.gpu,memory.used,memory.total,power.draw";

export interface SamplerOptions {
  taskDir: string;
  attempt: number;
  /** The trainer's process group: the trainer and every process it started. */
  pgid: number;
  /** A process of the group not to count (the runner itself, when it shares the group). */
  exclude: number | null;
  intervalMs: number;
  /** CUDA_VISIBLE_DEVICES of the attempt: the GPUs to report (all when unset). */
  visibleGpus: string | undefined;
}

export function startSystemSampler(options: SamplerOptions): () => void {
  // CPU ticks per process (pid and start time: a reused pid is another process) at the last sample.
  let lastTicks = new Map<string, number>();
  let lastAt = Date.now();
  let busy = false;
  let stopped = false;
  let gpusAvailable = true;

  const sample = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const now = Date.now();
      const group = await groupUsage(options.pgid, options.exclude);
      let ticks = 0;
      const seen = new Map<string, number>();
      for (const p of group) {
        const key = `${p.pid}:${p.startTime}`;
        seen.set(key, p.cpuTicks);
        // A process new since the last sample started after it: all its time is in this interval.
        ticks += p.cpuTicks - (lastTicks.get(key) ?? 0);
      }
      const seconds = (now - lastAt) / 1000;
      lastTicks = seen;
      lastAt = now;
      const gpus = gpusAvailable ? await gpuUsage(options.visibleGpus) : null;
      if (gpus === undefined) gpusAvailable = false;
      const record: SystemSample = {
        version: SYSTEM_SAMPLE_VERSION,
        attempt: options.attempt,
        time: now / 1000,
        cpuPercent: Math.round((ticks / CLOCK_TICKS_PER_SECOND / seconds) * 100 * 10) / 10,
        memoryBytes: group.reduce((sum, p) => sum + p.rssBytes, 0),
        processes: group.length,
        ...(gpus ? { gpus } : {}),
      };
      if (!stopped) {
        await appendFile(join(options.taskDir, SYSTEM_SAMPLES_FILE), `${JSON.stringify(record)}\n`);
      }
    } catch {
      // Skipped: /proc raced with an exit, or the disk is full.
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void sample(), options.intervalMs);
  // The first interval's CPU time is measured from here.
  void groupUsage(options.pgid, options.exclude)
    .then((group) => {
      lastTicks = new Map(group.map((p) => [`${p.pid}:${p.startTime}`, p.cpuTicks]));
    })
    .catch(() => {});
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

interface ProcessUsage {
  pid: number;
  startTime: string;
  cpuTicks: number;
  rssBytes: number;
}

/** Every process of the group, with its CPU time and resident memory. */
async function groupUsage(pgid: number, exclude: number | null): Promise<ProcessUsage[]> {
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name)).map(Number);
  const usage = await Promise.all(
    pids.map(async (pid): Promise<ProcessUsage | null> => {
      if (pid === exclude) return null;
      try {
        const stat = parseStat(await readFile(`/proc/${pid}/stat`, "utf8"));
        if (stat.pgrp !== pgid || stat.state === "Z") return null;
        const status = await readFile(`/proc/${pid}/status`, "utf8");
        const rssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
        return { pid, startTime: stat.startTime, cpuTicks: stat.cpuTicks, rssBytes: rssKb * 1024 };
      } catch {
        return null; // it exited meanwhile
      }
    }),
  );
  return usage.filter((u) => u !== null);
}

/**
 * The attempt's GPUs as nvidia-smi reports them; null when this sample has none to give;
 * undefined when there is no nvidia-smi at all (not asked again).
 */
function gpuUsage(visible: string | undefined): Promise<GpuSample[] | null | undefined> {
  return new Promise((resolve) => {
    execFile(
      "nvidia-smi",
      [`--query-gpu=${GPU_QUERY}`, "--format=csv,noheader,nounits"],
      { timeout: NVIDIA_SMI_TIMEOUT_MS },
      (err, stdout) => {
        if (err) {
          resolve((err as NodeJS.ErrnoException).code === "ENOENT" ? undefined : null);
          return;
        }
        resolve(parseNvidiaSmi(stdout, visible));
      },
    );
  });
}

/**
 * nvidia-smi's CSV (`--query-gpu=index,utilization.gpu,memory.used,memory.total,power.draw
 * --format=csv,noheader,nounits`), one GPU a line, kept to the visible ones (indices in
 * CUDA_VISIBLE_DEVICES; all when it is unset). A value nvidia-smi cannot read ("[N/A]") is null.
 */
export function parseNvidiaSmi(csv: string, visible: string | undefined): GpuSample[] {
  const wanted = visible === undefined ? null : new Set(visible.split(",").map((v) => v.trim()));
  const number = (text: string | undefined) => {
    const value = Number(text?.trim());
    return text !== undefined && text.trim() !== "" && Number.isFinite(value) ? value : null;
  };
  const gpus: GpuSample[] = [];
  for (const line of csv.split("\n")) {
    const fields = line.split(",");
    const index = number(fields[0]);
    if (index === null || fields.length < 5) continue;
    if (wanted && !wanted.has(String(index))) continue;
    gpus.push({
      index,
      utilizationPercent: number(fields[1]),
      memoryUsedMiB: number(fields[2]),
      memoryTotalMiB: number(fields[3]),
      powerWatts: number(fields[4]),
    });
  }
  return gpus;
}
