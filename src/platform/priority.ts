import { writeFileSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * Lowers this process's CPU priority to `niceness`, for it and every process it starts after.
 * Where the kernel groups processes by session for scheduling (sched_autogroup), a niceness
 * only ranks a process against its own session's, and a detached job is a session of its own:
 * the session's group is lowered too (`/proc/self/autogroup`), so the job yields to a trainer of
 * another session. Says whether the group was lowered (false where there is no such grouping).
 */
export function lowerOwnPriority(niceness: number): { autogroup: boolean } {
  setPriority(niceness);
  try {
    writeFileSync("/proc/self/autogroup", String(niceness));
    return { autogroup: true };
  } catch {
    return { autogroup: false };
  }
}
