import { readdirSync, readFileSync } from "node:fs";
import { readStat, type StatFields } from "../../src/platform/identity";

export interface TaskProcess extends StatFields {
  /** RANK from its environment (a torchrun worker), else null. */
  rank: number | null;
}

/**
 * Every live process (zombies left out) of a task: those whose environment names the task's
 * folder (STUDIO_TASK_DIR, which the launcher sets and every child inherits), whatever session,
 * group or parent they ended up with. The runner carries it too.
 */
export function processesOfTask(taskDir: string): TaskProcess[] {
  const found: TaskProcess[] = [];
  const tag = `STUDIO_TASK_DIR=${taskDir}`;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string[];
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
    } catch {
      continue; // gone, or not ours to read
    }
    if (!environ.includes(tag)) continue;
    const stat = readStat(Number(entry));
    if (!stat || stat.state === "Z" || stat.state === "X") continue;
    const rank = environ.find((v) => v.startsWith("RANK="))?.slice(5);
    found.push({ ...stat, rank: rank === undefined ? null : Number(rank) });
  }
  return found;
}
