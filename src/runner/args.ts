import type { ResourceLimits } from "./resource-limits";

/**
 * The runner's command line:
 * `runner --task-dir <dir> --attempt <n> [--daemonize] [--share-group] [--memory-mb <n>]
 * [--cpus <x>] [--max-run-seconds <n>] [--nice <n>] -- <file> <args...>`.
 * The studio builds it with `runnerArgv` and the runner reads it with `parseRunnerArgs`, so the
 * two never drift apart.
 */
export interface RunnerArgs {
  taskDir: string;
  attempt: number;
  /** Re-spawn detached and print the daemon's pid, so the long-lived runner has no studio ancestry. */
  daemonize: boolean;
  /**
   * Keep the trainer in the runner's process group instead of a group of its own. For a
   * scheduler that signals the job's group (Slurm: scancel --signal, scontrol suspend/resume
   * reach the batch script's group only), so its signals reach the trainer too. Default false.
   */
  shareGroup?: boolean;
  /** What the trainer is held to (./resource-limits); none by default. */
  limits?: ResourceLimits;
  /** The trainer: an executable path (or a name looked up in PATH) and its argv, never a shell string. */
  file: string;
  args: string[];
}

export function runnerArgv(a: RunnerArgs): string[] {
  return [
    "--task-dir",
    a.taskDir,
    "--attempt",
    String(a.attempt),
    ...(a.daemonize ? ["--daemonize"] : []),
    ...(a.shareGroup ? ["--share-group"] : []),
    ...Object.entries(a.limits ?? {}).flatMap(([key, value]) =>
      value === undefined ? [] : [LIMIT_OPTIONS[key as keyof ResourceLimits], String(value)],
    ),
    "--",
    a.file,
    ...a.args,
  ];
}

const LIMIT_OPTIONS: Record<keyof ResourceLimits, string> = {
  memoryMb: "--memory-mb",
  cpus: "--cpus",
  maxRunSeconds: "--max-run-seconds",
  nice: "--nice",
};

/** Each limit's bounds: the runner refuses anything else at once. */
const LIMIT_BOUNDS: Record<keyof ResourceLimits, { min: number; max: number; integer: boolean }> = {
  memoryMb: { min: 16, max: 16_777_216, integer: true },
  cpus: { min: 0.01, max: 1024, integer: false },
  maxRunSeconds: { min: 1, max: 31_536_000, integer: true },
  nice: { min: 0, max: 19, integer: true },
};

export function parseRunnerArgs(argv: readonly string[]): Required<RunnerArgs> {
  const sep = argv.indexOf("--");
  if (sep < 0 || sep === argv.length - 1) throw new Error("expected `-- <file> [args...]`");
  let taskDir: string | undefined;
  let attempt: number | undefined;
  let daemonize = false;
  let shareGroup = false;
  const limits: ResourceLimits = {};
  const options = argv.slice(0, sep);
  for (let i = 0; i < options.length; i++) {
    const option = options[i];
    if (option === "--daemonize") {
      daemonize = true;
    } else if (option === "--share-group") {
      shareGroup = true;
    } else if (Object.values(LIMIT_OPTIONS).includes(option!)) {
      const key = (Object.keys(LIMIT_OPTIONS) as (keyof ResourceLimits)[]).find(
        (k) => LIMIT_OPTIONS[k] === option,
      )!;
      const value = Number(options[++i]);
      const bounds = LIMIT_BOUNDS[key];
      if (
        !Number.isFinite(value) ||
        value < bounds.min ||
        value > bounds.max ||
        (bounds.integer && !Number.isInteger(value))
      ) {
        throw new Error(`${option} must be a number from ${bounds.min} to ${bounds.max}`);
      }
      limits[key] = value;
    } else if (option === "--task-dir" || option === "--attempt") {
      const value = options[++i];
      if (value === undefined) throw new Error(`${option} needs a value`);
      if (option === "--task-dir") {
        taskDir = value;
      } else {
        if (!/^[1-9]\d*$/.test(value)) throw new Error(`--attempt must be a positive integer`);
        attempt = Number(value);
      }
    } else {
      throw new Error(`unknown option ${option}`);
    }
  }
  if (!taskDir) throw new Error("--task-dir is required");
  if (attempt === undefined) throw new Error("--attempt is required");
  if (daemonize && shareGroup) {
    throw new Error("--share-group is for a runner that stays in its job; it cannot --daemonize");
  }
  return {
    taskDir,
    attempt,
    daemonize,
    shareGroup,
    limits,
    file: argv[sep + 1]!,
    args: argv.slice(sep + 2),
  };
}
