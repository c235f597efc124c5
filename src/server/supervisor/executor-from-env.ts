import type { Env } from "../env";
import type {
  AttemptHandle,
  AttemptState,
  CancelSpec,
  ControlSignal,
  Executor,
  ExitRecord,
  FolderHint,
  LaunchSpec,
  LocalAttemptHandle,
  ProcessState,
  SlurmAttemptHandle,
} from "./executor";
import { LocalExecutor } from "./local-executor";
import { SlurmExecutor } from "./slurm-executor";

/** What every executor reads from a task folder, whatever its handles are. */
type FolderReader = Pick<Executor, "readOutcome" | "recoverHandle">;

/** The studio's executor as configured: new attempts go to STUDIO_EXECUTOR. */
export function executorFromEnv(env: Env): ExecutorByKind {
  const slurm =
    env.STUDIO_EXECUTOR === "slurm" || env.STUDIO_SLURM_CONF
      ? new SlurmExecutor({
          slurmConf: env.STUDIO_SLURM_CONF,
          partition: env.STUDIO_SLURM_PARTITION,
          timeLimit: env.STUDIO_SLURM_TIME,
          extraArgs: env.STUDIO_SLURM_EXTRA_ARGS,
        })
      : null;
  return new ExecutorByKind(env.STUDIO_EXECUTOR, new LocalExecutor(), slurm);
}

/**
 * Starts new attempts on the default executor and follows every existing one with the
 * executor its handle names, so attempts launched before the default changed (local → slurm
 * or back) are still followed, signalled and reconciled by what runs them.
 */
export class ExecutorByKind implements Executor {
  constructor(
    readonly defaultKind: AttemptHandle["kind"],
    private readonly local: Executor<LocalAttemptHandle>,
    private readonly slurm: Executor<SlurmAttemptHandle> | null,
  ) {
    if (defaultKind === "slurm" && !slurm) throw new Error("no Slurm executor was configured");
  }

  /** Every configured executor, the default first, for what is read from a task folder. */
  private all(): FolderReader[] {
    const others = this.slurm ? [this.local, this.slurm] : [this.local];
    return this.defaultKind === "slurm" ? others.reverse() : others;
  }

  private slurmFor(handle: SlurmAttemptHandle): Executor<SlurmAttemptHandle> {
    if (!this.slurm) {
      throw new Error(
        `attempt ${handle.attempt} runs as Slurm job ${handle.jobId}, but this studio has no Slurm configuration (STUDIO_SLURM_CONF)`,
      );
    }
    return this.slurm;
  }

  start(spec: LaunchSpec): Promise<AttemptHandle> {
    return this.defaultKind === "slurm" ? this.slurm!.start(spec) : this.local.start(spec);
  }

  probe(handle: AttemptHandle): Promise<AttemptState> {
    return handle.kind === "local" ? this.local.probe(handle) : this.slurmFor(handle).probe(handle);
  }

  inspect(handle: AttemptHandle): Promise<{ runner: ProcessState; trainer: ProcessState }> {
    return handle.kind === "local"
      ? this.local.inspect(handle)
      : this.slurmFor(handle).inspect(handle);
  }

  quickLook(handle: AttemptHandle): string | null {
    return handle.kind === "local" ? this.local.quickLook(handle) : null;
  }

  signal(handle: AttemptHandle, signal: ControlSignal): Promise<boolean> {
    return handle.kind === "local"
      ? this.local.signal(handle, signal)
      : this.slurmFor(handle).signal(handle, signal);
  }

  cancel(handle: AttemptHandle, request: CancelSpec): Promise<boolean> {
    return handle.kind === "local"
      ? this.local.cancel(handle, request)
      : this.slurmFor(handle).cancel(handle, request);
  }

  graceKeptByRunner(handle: AttemptHandle): boolean {
    return handle.kind === "local"
      ? this.local.graceKeptByRunner(handle)
      : this.slurmFor(handle).graceKeptByRunner(handle);
  }

  /** exit.json is the same file for every executor; a cluster executor also knows jobs that ended without one. */
  async readOutcome(taskDir: string, attempt: number): Promise<ExitRecord | null> {
    for (const executor of this.all()) {
      const outcome = await executor.readOutcome(taskDir, attempt);
      if (outcome) return outcome;
    }
    return null;
  }

  async recoverHandle(taskDir: string, attempt: number): Promise<AttemptHandle | null> {
    for (const executor of this.all()) {
      const handle = await executor.recoverHandle(taskDir, attempt);
      if (handle) return handle;
    }
    return null;
  }

  watch(taskDir: string, onHint: FolderHint): () => void {
    return this.local.watch(taskDir, onHint);
  }
}
