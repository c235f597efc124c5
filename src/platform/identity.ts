import { readFileSync } from "node:fs";

/**
 * Process identity: a PID alone is reused by the kernel, so a process "is ours" only when the
 * boot, the PID and the start time all match and it is not a zombie. The runner imports this
 * module too, so it stays free of anything but node:fs.
 */
export interface ProcessIdentity {
  bootId: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot, kept as the digits the kernel wrote. */
  startTime: string;
}

/** The fields of /proc/<pid>/stat this studio uses. */
export interface StatFields {
  pid: number;
  comm: string;
  /** R, S, D, T (stopped), t (traced), Z (zombie), X (dead), I, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Field 7 (tty_nr): the controlling terminal's device number, 0 when there is none. */
  terminal: number;
  /** Fields 14 + 15: CPU time in user and kernel mode, in clock ticks (USER_HZ). */
  cpuTicks: number;
  startTime: string;
}

/**
 * Parses one /proc/<pid>/stat line. The command name (field 2) sits in parentheses and may
 * itself contain spaces and parentheses, so fields are counted after the LAST ')'.
 */
export function parseStat(line: string): StatFields {
  const open = line.indexOf(" (");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`malformed stat line: ${JSON.stringify(line)}`);
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const rest = line
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const pid = Number(line.slice(0, open));
  const state = rest[0] ?? "";
  const [ppid, pgrp, session, terminal, utime, stime] = [
    rest[1],
    rest[2],
    rest[3],
    rest[4],
    rest[11],
    rest[12],
  ].map(Number);
  const startTime = rest[19] ?? "";
  if (
    !Number.isInteger(pid) ||
    !/^[A-Za-z]$/.test(state) ||
    ![ppid, pgrp, session, terminal, utime, stime].every(Number.isInteger) ||
    !/^\d+$/.test(startTime)
  ) {
    throw new Error(`malformed stat line: ${JSON.stringify(line)}`);
  }
  return {
    pid,
    comm: line.slice(open + 2, close),
    state,
    ppid: ppid!,
    pgrp: pgrp!,
    session: session!,
    terminal: terminal!,
    cpuTicks: utime! + stime!,
    startTime,
  };
}

/** The kernel's id for this boot; STUDIO_BOOT_ID_FILE points elsewhere so a test can "reboot". */
export function readBootId(): string {
  const file = process.env.STUDIO_BOOT_ID_FILE || "/proc/sys/kernel/random/boot_id";
  return readFileSync(file, "utf8").trim();
}

/** The stat fields of a live (or zombie) process, or null when there is no such process. */
export function readStat(pid: number): StatFields | null {
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") return null;
    throw err;
  }
  return parseStat(line);
}

export function readIdentity(pid: number): ProcessIdentity | null {
  const stat = readStat(pid);
  return stat ? { bootId: readBootId(), pid, startTime: stat.startTime } : null;
}

export type Liveness = "alive" | "gone" | "zombie" | "reused" | "other-boot";

/** What an identity's process is now, from the current boot id and a fresh stat (pure). */
export function judge(
  identity: ProcessIdentity,
  currentBootId: string,
  stat: StatFields | null,
): Liveness {
  // After a reboot the PID names someone else, whatever /proc says.
  if (identity.bootId !== currentBootId) return "other-boot";
  if (!stat) return "gone";
  if (stat.startTime !== identity.startTime) return "reused";
  if (stat.state === "Z" || stat.state === "X") return "zombie";
  return "alive";
}

export interface Inspection {
  liveness: Liveness;
  /** The stat state when the process is ours and alive (T = stopped by SIGSTOP), else null. */
  state: string | null;
  /** The process group the process leads or belongs to, when alive. */
  pgrp: number | null;
}

export function inspect(identity: ProcessIdentity): Inspection {
  const bootId = readBootId();
  const stat = identity.bootId === bootId ? readStat(identity.pid) : null;
  const liveness = judge(identity, bootId, stat);
  return liveness === "alive"
    ? { liveness, state: stat!.state, pgrp: stat!.pgrp }
    : { liveness, state: null, pgrp: null };
}

export function probe(identity: ProcessIdentity): Liveness {
  return inspect(identity).liveness;
}

export type SignalResult = "sent" | Exclude<Liveness, "alive"> | "not-group-leader";

/**
 * Sends `signal` to the process group led by the identity's process, after proving, right
 * before the kill, that the process is ours and still leads its group. Anything else gets
 * nothing: a reused PID or a PID from another boot belongs to a stranger.
 */
export function signalGroup(identity: ProcessIdentity, signal: NodeJS.Signals): SignalResult {
  const seen = inspect(identity);
  if (seen.liveness !== "alive") return seen.liveness;
  if (seen.pgrp !== identity.pid) return "not-group-leader";
  try {
    process.kill(-identity.pid, signal);
  } catch (err) {
    // The group emptied between the check and the kill.
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return "gone";
    throw err;
  }
  return "sent";
}
