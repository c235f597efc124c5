import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What the runner holds a trainer to. Applied by the runner, so they hold with no studio
 * running: memory and CPU through a control group of the attempt's own (cgroup v2 where the
 * machine has its controllers, else v1's memory and cpu hierarchies), the run time by the
 * runner's own clock, the CPU priority with setpriority. A limit that cannot be applied is
 * refused (the attempt does not start), never silently dropped.
 */
export interface ResourceLimits {
  memoryMb?: number;
  /** CPU time as a number of cores (1.5: one and a half cores' worth). */
  cpus?: number;
  maxRunSeconds?: number;
  /** 0 to 19: how much the trainer yields the CPU to others. */
  nice?: number;
}

/** What the attempt's memory cgroup saw, for exit.json: the evidence of an out-of-memory kill. */
export interface MemoryEvidence {
  limitBytes: number;
  peakBytes: number | null;
  /** Processes the kernel killed for reaching the limit. */
  oomKills: number;
}

const CGROUP_ROOT = process.env.STUDIO_CGROUP_ROOT ?? "/sys/fs/cgroup";
/** Every attempt's group lives under this one, named after the task folder and attempt. */
const PARENT = "finetune-studio";

interface Group {
  dir: string;
  version: 1 | 2;
}

/** The attempt's control groups: where its processes go, and what they used. */
export interface AttemptGroups {
  /** `cgroup.procs` files the trainer writes its pid to before it execs. */
  procsFiles: string[];
  memory: () => MemoryEvidence | null;
  /** Removes the groups (once every process of the attempt is gone). */
  release: () => void;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Which hierarchy holds `controller`: the unified one when it offers it, else v1's own. */
function hierarchyOf(controller: "memory" | "cpu"): { root: string; version: 1 | 2 } | null {
  const unified = read(join(CGROUP_ROOT, "cgroup.controllers"));
  if (unified?.split(/\s+/).includes(controller)) return { root: CGROUP_ROOT, version: 2 };
  const v1 = join(CGROUP_ROOT, controller);
  return existsSync(join(v1, "cgroup.procs")) ? { root: v1, version: 1 } : null;
}

function makeGroup(controller: "memory" | "cpu", name: string): Group {
  const hierarchy = hierarchyOf(controller);
  if (!hierarchy) {
    throw new Error(`this machine has no ${controller} control group to hold the limit to`);
  }
  const parent = join(hierarchy.root, PARENT);
  const dir = join(parent, name);
  try {
    mkdirSync(dir, { recursive: true });
    if (hierarchy.version === 2) {
      // v2 hands a controller to children only when the parent enables it.
      writeFileSync(join(hierarchy.root, "cgroup.subtree_control"), `+${controller}`);
      writeFileSync(join(parent, "cgroup.subtree_control"), `+${controller}`);
    }
  } catch (err) {
    throw new Error(
      `cannot create the ${controller} control group ${dir}: ${(err as Error).message}`,
    );
  }
  return { dir, version: hierarchy.version };
}

/** Creates the attempt's groups with their limits; throws (naming why) when one cannot be set. */
export function createAttemptGroups(name: string, limits: ResourceLimits): AttemptGroups | null {
  if (limits.memoryMb === undefined && limits.cpus === undefined) return null;
  const groups: Group[] = [];
  let memory: Group | null = null;
  try {
    if (limits.memoryMb !== undefined) {
      memory = makeGroup("memory", name);
      groups.push(memory);
      const bytes = String(limits.memoryMb * 1024 * 1024);
      writeFileSync(
        join(memory.dir, memory.version === 2 ? "memory.max" : "memory.limit_in_bytes"),
        bytes,
      );
    }
    if (limits.cpus !== undefined) {
      const cpu = makeGroup("cpu", name);
      groups.push(cpu);
      const period = 100_000;
      const quota = Math.max(1000, Math.round(limits.cpus * period));
      if (cpu.version === 2) {
        writeFileSync(join(cpu.dir, "cpu.max"), `${quota} ${period}`);
      } else {
        writeFileSync(join(cpu.dir, "cpu.cfs_period_us"), String(period));
        writeFileSync(join(cpu.dir, "cpu.cfs_quota_us"), String(quota));
      }
    }
  } catch (err) {
    for (const g of groups) removeGroup(g.dir);
    throw new Error(`cannot apply the resource limits: ${(err as Error).message}`);
  }
  const memoryGroup = memory;
  return {
    procsFiles: groups.map((g) => join(g.dir, "cgroup.procs")),
    memory: () => (memoryGroup ? memoryEvidence(memoryGroup, limits.memoryMb!) : null),
    release: () => {
      for (const g of groups) removeGroup(g.dir);
    },
  };
}

function memoryEvidence(group: Group, memoryMb: number): MemoryEvidence {
  const counter = (text: string | null, key: string) =>
    Number(new RegExp(`^${key} (\\d+)$`, "m").exec(text ?? "")?.[1] ?? 0);
  const peak =
    group.version === 2
      ? read(join(group.dir, "memory.peak"))
      : read(join(group.dir, "memory.max_usage_in_bytes"));
  const oomKills =
    group.version === 2
      ? counter(read(join(group.dir, "memory.events")), "oom_kill")
      : counter(read(join(group.dir, "memory.oom_control")), "oom_kill");
  return {
    limitBytes: memoryMb * 1024 * 1024,
    peakBytes: peak === null ? null : Number(peak.trim()),
    oomKills,
  };
}

/**
 * Removes a group once it is empty. Processes just killed leave it a moment after they are
 * reaped (EBUSY until then): tried again for a few seconds, then left (a process that escaped).
 */
function removeGroup(dir: string, triesLeft = 50) {
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EBUSY" && triesLeft > 0) {
      setTimeout(() => removeGroup(dir, triesLeft - 1), 100);
    }
  }
}

/**
 * The trainer's argv, wrapped so that it joins the attempt's groups before it execs: no moment
 * of the trainer's life (nor any child it starts) runs outside its limits.
 */
export function wrapInGroups(
  groups: AttemptGroups | null,
  file: string,
  args: string[],
): { file: string; args: string[] } {
  if (!groups) return { file, args };
  const join = 'for f in $STUDIO_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"';
  return { file: "/bin/sh", args: ["-c", join, "sh", file, ...args] };
}
