import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/**
 * Live (non-zombie) processes whose program is `script` (argv[1], as `node <script>` runs it),
 * with their working directory: the runner starts each trainer in its task folder.
 */
export function processesRunning(script: string): { pid: number; cwd: string }[] {
  const found: { pid: number; cwd: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (argv[1] !== script) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z" || state === "X") continue;
      found.push({ pid: Number(name), cwd: readlinkSync(`/proc/${name}/cwd`) });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}
