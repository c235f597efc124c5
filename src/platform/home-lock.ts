import { closeSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { probe, readIdentity } from "./identity";

export interface LockHolder {
  pid: number;
  startTime: string;
  bootId: string;
  url: string;
}

export class HomeLockedError extends Error {
  constructor(
    readonly holder: LockHolder,
    lockPath: string,
  ) {
    super(
      `another studio is already running on this home: pid ${holder.pid}, ${holder.url} (lock ${lockPath}); stop it with "studio stop" or use another STUDIO_HOME`,
    );
  }
}

function readHolder(lockPath: string): LockHolder | null {
  try {
    return JSON.parse(readFileSync(lockPath, "utf8")) as LockHolder;
  } catch {
    return null;
  }
}

/** Who holds the home's lock, if that process is still alive (a lock left by a crash is stale). */
export function liveLockHolder(lockPath: string): LockHolder | null {
  const holder = readHolder(lockPath);
  if (!holder) return null;
  return probe(holder) === "alive" ? holder : null;
}

/**
 * One studio per STUDIO_HOME: PGlite takes no lock of its own and two processes on one data
 * folder corrupt it. The lock file names its holder by (boot id, pid, start time), so a lock
 * left by a killed studio is recognised as stale even when its pid has been reused.
 * Returns the release function.
 */
export async function acquireHomeLock(lockPath: string, url: string): Promise<() => void> {
  const self = readIdentity(process.pid);
  if (!self) throw new Error("cannot read this process's identity from /proc");
  const mine: LockHolder = { ...self, url };
  for (let tries = 0; tries < 5; tries++) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, JSON.stringify(mine));
      closeSync(fd);
      // A rival that judged the previous lock stale at the same moment may have moved ours aside;
      // after a pause, whoever's lock is in place wins and the other gives way.
      await new Promise((r) => setTimeout(r, 100));
      const holder = readHolder(lockPath);
      if (holder?.pid !== mine.pid || holder.startTime !== mine.startTime) {
        if (holder) throw new HomeLockedError(holder, lockPath);
        continue;
      }
      return () => {
        const holder = readHolder(lockPath);
        if (holder?.pid === mine.pid && holder.startTime === mine.startTime) {
          renameSync(lockPath, `${lockPath}.released`);
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = liveLockHolder(lockPath);
      if (holder) throw new HomeLockedError(holder, lockPath);
      // Stale: move it aside atomically; if a rival studio did the same first, the rename fails
      // and the next round sees the rival's fresh lock.
      try {
        renameSync(lockPath, `${lockPath}.stale`);
      } catch {}
    }
  }
  throw new Error(`could not take the lock ${lockPath}`);
}
