// The functions that took the most CPU themselves (self time) in V8 CPU profiles written by
// `node --cpu-prof` (set BENCH_CPU_PROF=<folder> for a benchmark's studio, see lib/bench-studio).
//   npx tsx bench/profile-top.ts <folder or .cpuprofile> [--pid <pid>] [--top 25]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fmt, printTable } from "./lib/stats";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const target = args[0];
if (!target)
  throw new Error("usage: profile-top.ts <folder or .cpuprofile> [--pid <pid>] [--top N]");
const pid = option("--pid");
const top = Number(option("--top") ?? 25);

const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((name) => name.endsWith(".cpuprofile"))
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
      .filter((name) => pid === undefined || name.split(".")[3] === pid)
      .map((name) => join(target, name))
  : [target];
if (files.length === 0) throw new Error(`no profile in ${target}${pid ? ` for pid ${pid}` : ""}`);

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") {
      idleUs += us;
      return;
    }
    totalUs += us;
    const where = frame.url
      ? `${frame.url.replace(/^.*\/(node_modules|dist|src)\//, "$1/")}:${frame.lineNumber + 1}`
      : "";
    const key = `${frame.functionName || "(anonymous)"} ${where}`.trim();
    selfUs.set(key, (selfUs.get(key) ?? 0) + us);
  });
  const rows = [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({
      "self ms": fmt(us / 1000),
      "% busy": fmt((100 * us) / totalUs),
      function: fn,
    }));
  printTable(
    `${file}: ${fmt(totalUs / 1000)} ms busy, ${fmt(idleUs / 1000)} ms idle (top ${top} by self time)`,
    rows,
  );
}
