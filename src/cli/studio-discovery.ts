import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { type LockHolder, liveLockHolder } from "../platform/home-lock";
import { studioPaths } from "../server/home";

/** A studio found running on this machine: the home it holds and what its lock file says. */
export interface FoundStudio extends LockHolder {
  home: string;
}

/**
 * The programs a studio runs as: `studio start` runs dist/server.js, `studio start --foreground`
 * (and `npm start`) run it inside the CLI, dist/cli.js or its bin/studio.js launcher.
 */
const STUDIO_PROGRAM = /(^|\/)(dist\/(server|cli)\.js|\.?bin\/studio(\.js)?)$/;

/** NUL-separated strings, as /proc/<pid>/cmdline and /proc/<pid>/environ hold them. */
export function splitNul(text: string): string[] {
  return text.split("\0").filter((part) => part !== "");
}

export function environOf(entries: readonly string[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

/**
 * The home a process would hold if it is a studio of the person asking: it runs a studio
 * program, and its HOME is the asker's (another account's studios, or a sudo'ed one, are not
 * theirs to find). STUDIO_HOME as the process resolves it: relative to its working folder,
 * `~/.finetune-studio` of its HOME when unset. Null when the process is no such studio.
 */
export function candidateHome(
  argv: readonly string[],
  environ: ReadonlyMap<string, string>,
  cwd: string,
  askerHome: string,
): string | null {
  if (!argv.slice(1).some((arg) => STUDIO_PROGRAM.test(arg))) return null;
  const home = environ.get("HOME");
  if (!home || resolve(home) !== resolve(askerHome)) return null;
  const studioHome = environ.get("STUDIO_HOME") || join(home, ".finetune-studio");
  return isAbsolute(studioHome) ? resolve(studioHome) : resolve(cwd, studioHome);
}

function readProc(pid: string, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

/**
 * The studios of this person running on this machine, found through /proc: a process is one
 * only when the lock file of the home it names says that very process holds it (identity
 * checked, as for any lock holder). Processes of other users cannot be read and are skipped.
 */
export function findRunningStudios(askerHome = process.env.HOME || homedir()): FoundStudio[] {
  const found = new Map<number, FoundStudio>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    const cmdline = readProc(pid, "cmdline");
    if (!cmdline || !/dist\/(server|cli)\.js|bin\/studio/.test(cmdline)) continue;
    const environ = readProc(pid, "environ");
    if (environ === null) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    const home = candidateHome(splitNul(cmdline), environOf(splitNul(environ)), cwd, askerHome);
    if (!home) continue;
    const holder = liveLockHolder(studioPaths(home).lock);
    if (holder?.pid === Number(pid)) found.set(holder.pid, { ...holder, home });
  }
  return [...found.values()].sort((a, b) => a.home.localeCompare(b.home));
}
