import { execFileSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";

/**
 * Mounts a real tmpfs of `megabytes` at `path` (the tests run as root): a small disk to fill. A
 * fraction of a megabyte is rounded to whole kilobytes (tmpfs then rounds to its pages).
 */
export function mountTmpfs(path: string, megabytes: number) {
  const size = Number.isInteger(megabytes) ? `${megabytes}m` : `${Math.round(megabytes * 1024)}k`;
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path]);
}

/**
 * Unmounts a tmpfs from `mountTmpfs`. Trainers outlive their studio by design, so any process
 * still using the disk (a trainer a queued task launched late, its runner) is killed first, and
 * the unmount is tried again while the kernel lets go of them.
 */
export async function unmountTmpfs(path: string) {
  // Not (or no longer) a mount point: `fuser -m` would then kill every user of the disk that
  // holds it, this test run and the machine's other work included.
  if (!isMountPoint(path)) return;
  try {
    execFileSync("fuser", ["-k", "-KILL", "-m", path], { stdio: "ignore" });
  } catch {
    // nothing was using it
  }
  for (let tries = 0; ; tries++) {
    try {
      execFileSync("umount", [path], { stdio: "pipe" });
      return;
    } catch (err) {
      if (tries >= 100) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function isMountPoint(path: string): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return false;
  }
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === real);
}
