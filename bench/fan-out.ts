// Fan-out: many SSE clients follow one running task's log (task.onLog) while its trainer prints
// steadily, at 100 and at 5,000 lines/s: per-line latency (trainer write → client) across all
// clients, and the studio's resident memory. Baseline (same run, same studio): one client.
//   npx tsx bench/fan-out.ts [--clients 100] [--low 100] [--high 5000] [--seconds 15]
// The clients run in this process, so on a small machine their own work competes with the
// studio's: each reads the stream with JSON.parse alone (a log chunk's superjson form carries
// no special values) and times every line from its stamp.

import type { LogLine } from "../src/server/logs/log-cursor";
import { readSse, subscriptionUrl } from "../test/helpers/sse";
import type { TestStudio } from "../test/helpers/studio";
import { numberFlags } from "./lib/args";
import {
  baseUrl,
  benchStudio,
  killGroups,
  STAMP_TRAINER,
  startCommandTask,
} from "./lib/bench-studio";
import { cpuMs, rssMiB, sleep, wallMs } from "./lib/proc";
import { fmt, median, printTable, quantile } from "./lib/stats";

const flags = numberFlags({ clients: 100, low: 100, high: 5000, seconds: 15 });

/** `seq <n> at <ms>` → n and its send time (no regex: the clients parse millions of lines). */
function stampOf(text: string): { seq: number; sentAt: number } | null {
  const at = text.indexOf(" at ");
  if (!text.startsWith("seq ") || at < 0) return null;
  return { seq: Number(text.slice(4, at)), sentAt: Number(text.slice(at + 4)) };
}

/** task.onLog from the start: each batch of lines with the wall-clock time it arrived. */
async function* follow(url: string, taskId: string, signal: AbortSignal) {
  const response = await fetch(subscriptionUrl(url, "task.onLog", { id: taskId }), {
    headers: { accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || !response.body) throw new Error(`task.onLog: HTTP ${response.status}`);
  try {
    for await (const event of readSse(response.body)) {
      if (event.event !== "message") continue;
      const lines = (JSON.parse(event.data) as { json: LogLine[] }).json;
      yield { lines, receivedAt: wallMs() };
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

async function measure(studio: TestStudio, clients: number, rate: number) {
  const task = await startCommandTask(studio, [
    process.execPath,
    STAMP_TRAINER,
    "--rate",
    String(rate),
    "--seconds",
    String(flags.seconds),
  ]);
  try {
    const pid = studio.pid()!;
    const rssBefore = rssMiB(pid);
    const cpuBefore = cpuMs(pid);
    const wallBefore = wallMs();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssMiB(pid));
    }, 200);
    const lastSeq = Math.floor(rate * flags.seconds) - 1;
    const stop = new AbortController();
    const deadline = setTimeout(() => stop.abort(), (flags.seconds + 30) * 1000);
    // Lines replayed from the file on connect are not live: count only lines sent after every
    // client has had its first batch.
    let connected = 0;
    let liveFrom = Number.POSITIVE_INFINITY;
    const latencies: number[] = [];
    const client = async () => {
      let first = true;
      for await (const batch of follow(baseUrl(studio), task.id, stop.signal)) {
        if (first) {
          first = false;
          if (++connected === clients) liveFrom = wallMs();
        }
        let seq = 0;
        for (const line of batch.lines) {
          const stamp = stampOf(line.text);
          if (!stamp) continue;
          seq = stamp.seq;
          if (stamp.sentAt > liveFrom) latencies.push(batch.receivedAt - stamp.sentAt);
        }
        if (seq >= lastSeq) return;
      }
    };
    await Promise.all(Array.from({ length: clients }, client));
    clearTimeout(deadline);
    clearInterval(sampler);
    const rssAfter = rssMiB(pid);
    const cpuPercent = ((cpuMs(pid) - cpuBefore) / (wallMs() - wallBefore)) * 100;
    return { latencies, cpuPercent, rssBefore, rssPeak, rssAfter, timedOut: stop.signal.aborted };
  } finally {
    killGroups([task.trainerPid]);
    await sleep(1_000);
  }
}

const studio = await benchStudio({ STUDIO_CONCURRENCY: "2" });
try {
  const rows = [];
  for (const rate of [flags.low, flags.high]) {
    const one = await measure(studio, 1, rate);
    const many = await measure(studio, flags.clients, rate);
    const row = (what: string, r: typeof one, base: typeof one) => ({
      "lines/s": rate,
      clients: what,
      "live lines seen": r.latencies.length,
      "median ms": fmt(median(r.latencies)),
      "p99 ms": fmt(quantile(r.latencies, 0.99)),
      "p99 x 1 client": `${fmt(quantile(r.latencies, 0.99) / quantile(base.latencies, 0.99))}x`,
      "studio CPU %": fmt(r.cpuPercent),
      "RSS before MiB": fmt(r.rssBefore),
      "RSS peak MiB": fmt(r.rssPeak),
      "RSS after MiB": fmt(r.rssAfter),
      "timed out": r.timedOut ? "yes" : "no",
    });
    rows.push(row("1 (baseline)", one, one), row(String(flags.clients), many, one));
  }
  printTable(`fan-out: one task for ${flags.seconds} s, followed over SSE`, rows);
} finally {
  await studio.dispose();
}
process.exit(0);
