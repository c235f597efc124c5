// Line latency: a trainer writes a line → a client subscribed to task.onLog over SSE has it.
// Baseline (same run, same file): a loop that polls the log file and the pid every 2 s.
//   npx tsx bench/line-latency.ts [--seconds 8] [--rates 100,5000 via --low 100 --high 5000]
import { join } from "node:path";
import { followLog } from "../test/helpers/sse";
import { numberFlags } from "./lib/args";
import {
  baseUrl,
  benchStudio,
  killGroups,
  STAMP_TRAINER,
  startCommandTask,
} from "./lib/bench-studio";
import { NaivePoller } from "./lib/naive-poller";
import { fmt, median, printTable, quantile, ratio } from "./lib/stats";

const flags = numberFlags({ seconds: 8, low: 100, high: 5000 });

/** `seq <n> at <ms>` → the latency of that line when seen at `at`. */
function latencyOf(text: string, at: number): number | null {
  const match = / at ([\d.]+)$/.exec(text);
  return match ? at - Number(match[1]) : null;
}

async function measure(rate: number) {
  const studio = await benchStudio();
  const pids: number[] = [];
  try {
    const task = await startCommandTask(studio, [
      process.execPath,
      STAMP_TRAINER,
      "--rate",
      String(rate),
      "--seconds",
      String(flags.seconds),
    ]);
    pids.push(task.trainerPid);
    const studioLatency: number[] = [];
    const pollerLatency: number[] = [];
    const poller = new NaivePoller(
      join(studio.home, "tasks", task.id, "training.log"),
      task.trainerPid,
      (lines, at) => {
        for (const l of lines) {
          const ms = latencyOf(l, at);
          if (ms !== null) pollerLatency.push(ms);
        }
      },
      () => {},
    );
    poller.start();
    const stop = new AbortController();
    const deadline = setTimeout(() => stop.abort(), (flags.seconds + 5) * 1000);
    const expected = Math.floor(rate * flags.seconds) - 1;
    for await (const batch of followLog(baseUrl(studio), task.id, null, stop.signal)) {
      for (const line of batch.lines) {
        const ms = latencyOf(line.text, batch.receivedAt);
        if (ms !== null) studioLatency.push(ms);
      }
      if (studioLatency.length >= expected) break;
    }
    clearTimeout(deadline);
    // One more poll so the baseline has seen the same lines.
    await new Promise((r) => setTimeout(r, 2_100));
    poller.stop();
    return { rate, studioLatency, pollerLatency };
  } finally {
    killGroups(pids);
    await studio.dispose();
  }
}

const rows = [];
for (const rate of [flags.low, flags.high]) {
  const { studioLatency, pollerLatency } = await measure(rate);
  rows.push({
    "lines/s": rate,
    lines: studioLatency.length,
    "studio median ms": fmt(median(studioLatency)),
    "studio p99 ms": fmt(quantile(studioLatency, 0.99)),
    "2s-poller median ms": fmt(median(pollerLatency)),
    "2s-poller p99 ms": fmt(quantile(pollerLatency, 0.99)),
    "median ratio": ratio(median(pollerLatency), median(studioLatency)),
    "p99 ratio": ratio(quantile(pollerLatency, 0.99), quantile(studioLatency, 0.99)),
  });
}
printTable(`line latency, trainer write → SSE subscriber (${flags.seconds} s per rate)`, rows);
process.exit(0);
