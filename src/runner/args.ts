/**
 * The runner's command line:
 * `runner --task-dir <dir> --attempt <n> [--daemonize] [--share-group] -- <file> <args...>`.
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
    "--",
    a.file,
    ...a.args,
  ];
}

export function parseRunnerArgs(argv: readonly string[]): Required<RunnerArgs> {
  const sep = argv.indexOf("--");
  if (sep < 0 || sep === argv.length - 1) throw new Error("expected `-- <file> [args...]`");
  let taskDir: string | undefined;
  let attempt: number | undefined;
  let daemonize = false;
  let shareGroup = false;
  const options = argv.slice(0, sep);
  for (let i = 0; i < options.length; i++) {
    const option = options[i];
    if (option === "--daemonize") {
      daemonize = true;
    } else if (option === "--share-group") {
      shareGroup = true;
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
    file: argv[sep + 1]!,
    args: argv.slice(sep + 2),
  };
}
