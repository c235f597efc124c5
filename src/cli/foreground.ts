import { readFileSync } from "node:fs";

/**
 * Field 7 of a /proc/<pid>/stat line: the process's controlling terminal, 0 for none. Counted
 * after the last ')', as the command name before it may hold spaces and parentheses.
 */
export function controllingTerminal(statLine: string): number {
  const rest = statLine
    .slice(statLine.lastIndexOf(")") + 1)
    .trim()
    .split(/\s+/);
  return Number(rest[4] ?? 0);
}

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
    const terminal = controllingTerminal(readFileSync(`/proc/${pid}/stat`, "utf8"));
    return foregroundReason(argv, terminal);
  } catch {
    return null;
  }
}
