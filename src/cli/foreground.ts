import { readFileSync } from "node:fs";
import { readStat } from "../platform/identity";

/**
 * Why a studio is someone's foreground process, or null when `studio start` put it in the
 * background. A background studio runs dist/server.js in a session of its own, with no terminal;
 * `studio start --foreground` (and `npm start`) says so in its arguments, and a server started
 * by hand in a terminal has that terminal. A restart from elsewhere would end such a studio in
 * its terminal (or under whatever runs it) and leave a background one in its place.
 */
export function foregroundReason(argv: readonly string[], terminal: number): string | null {
  if (argv.includes("--foreground")) return "it was started with `studio start --foreground`";
  if (terminal !== 0) return "it runs in a terminal";
  return null;
}

/** foregroundReason of a running process, from /proc; null when it cannot be read. */
export function foregroundReasonOf(pid: number): string | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const stat = readStat(pid);
    return stat ? foregroundReason(argv, stat.terminal) : null;
  } catch {
    return null;
  }
}
