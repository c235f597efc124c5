import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { writeJsonAtomic } from "../../platform/atomic-write";
import {
  inspect,
  type ProcessIdentity,
  readIdentity,
  readStat,
  signalGroup,
} from "../../platform/identity";
import { DIST_DIR } from "../../platform/package-root";
import { runnerArgv } from "../../runner/args";
import { readExitRecord, readRunnerRecord } from "../../runner/record-schemas";
import {
  type CancelRequest,
  cancelRequestPath,
  type ExitRecord,
  exitRecordPath,
  RECORD_VERSION,
  type RunnerRecord,
  runnerRecordPath,
} from "../../runner/records";
import {
  type AttemptState,
  type CancelSpec,
  type ControlSignal,
  type Executor,
  type FolderHint,
  HANDLE_VERSION,
  type LaunchSpec,
  type LocalAttemptHandle,
  type ProcessState,
} from "./executor";
import { watchTaskFolder } from "./folder-watch";

export interface LocalExecutorOptions {
  /** The bundled runner; default dist/runner.js of this install. */
  runnerPath?: string;
  /** How long start() waits for the runner to confirm the trainer runs; default 10 s. */
  launchTimeoutMs?: number;
}

const CONFIRM_POLL_MS = 5;

/**
 * Runs each attempt under a detached runner on this machine (see src/runner). The studio keeps
 * no pipe, no child and no parent link to it: everything it knows comes from the task folder
 * and /proc, so a restarted studio knows exactly as much as the one that launched.
 */
export class LocalExecutor implements Executor<LocalAttemptHandle> {
  readonly runnerPath: string;
  readonly launchTimeoutMs: number;

  constructor(options: LocalExecutorOptions = {}) {
    this.runnerPath = options.runnerPath ?? join(DIST_DIR, "runner.js");
    this.launchTimeoutMs = options.launchTimeoutMs ?? 10_000;
  }

  async start(spec: LaunchSpec): Promise<LocalAttemptHandle> {
    const { taskDir, attempt, command } = spec;
    if (!existsSync(this.runnerPath)) {
      throw new Error(`the runner is not built: ${this.runnerPath} is missing`);
    }
    mkdirSync(taskDir, { recursive: true });
    // A record left by an earlier launch must not pass for this one's while the runner starts.
    rmSync(exitRecordPath(taskDir), { force: true });
    rmSync(runnerRecordPath(taskDir), { force: true });
    const env = { ...command.env };
    // The runner must read the same boot id as the studio that will judge its records.
    if (process.env.STUDIO_BOOT_ID_FILE) env.STUDIO_BOOT_ID_FILE = process.env.STUDIO_BOOT_ID_FILE;
    const argv = runnerArgv({ taskDir, attempt, daemonize: true, ...command, limits: spec.limits });
    const runnerPid = await spawnDaemon(this.runnerPath, argv, env);
    const runner = readIdentity(runnerPid);

    const deadline = Date.now() + this.launchTimeoutMs;
    for (;;) {
      const record = readRunnerRecord(taskDir, attempt);
      if (record) return handleFrom(taskDir, record, runnerPid);
      const exit = readExitRecord(taskDir, attempt);
      if (exit) throw new Error(launchFailure(exit));
      if (!runner || inspect(runner).liveness !== "alive") {
        const late = readRunnerRecord(taskDir, attempt);
        if (late) return handleFrom(taskDir, late, runnerPid);
        const lateExit = readExitRecord(taskDir, attempt);
        if (lateExit) throw new Error(launchFailure(lateExit));
        throw new Error(`the runner (pid ${runnerPid}) exited before starting the trainer`);
      }
      if (Date.now() > deadline) {
        // Give up for good: nothing of this attempt may run on unseen.
        signalOne(runner, "SIGKILL");
        const late = readRunnerRecord(taskDir, attempt);
        if (late) signalGroup({ bootId: late.bootId, ...late.trainer }, "SIGKILL");
        throw new Error(
          `the runner did not confirm the trainer within ${this.launchTimeoutMs} ms; launch abandoned`,
        );
      }
      await sleep(CONFIRM_POLL_MS);
    }
  }

  async inspect(
    handle: LocalAttemptHandle,
  ): Promise<{ runner: ProcessState; trainer: ProcessState }> {
    return {
      runner: processState({ bootId: handle.bootId, ...handle.runner }),
      trainer: processState({ bootId: handle.bootId, ...handle.trainer }),
    };
  }

  async probe(handle: LocalAttemptHandle): Promise<AttemptState> {
    if (readExitRecord(handle.taskDir, handle.attempt)) return "exited";
    const { runner, trainer } = await this.inspect(handle);
    if (runner === "other-boot") return "other-boot";
    if (runner === "alive" || runner === "stopped") {
      return trainer === "stopped" ? "paused" : "running";
    }
    // The runner writes exit.json just before it exits: look again to close that window.
    return readExitRecord(handle.taskDir, handle.attempt) ? "exited" : "gone";
  }

  async signal(handle: LocalAttemptHandle, signal: ControlSignal): Promise<boolean> {
    return signalGroup({ bootId: handle.bootId, ...handle.trainer }, signal) === "sent";
  }

  async cancel(handle: LocalAttemptHandle, request: CancelSpec): Promise<boolean> {
    if (this.graceKeptByRunner(handle)) {
      try {
        writeJsonAtomic(cancelRequestPath(handle.taskDir), {
          version: RECORD_VERSION,
          attempt: handle.attempt,
          requestedAt: request.requestedAt.toISOString(),
          graceMs: request.graceMs,
        } satisfies CancelRequest);
        // The runner also looks every second; the signal only makes it look now.
        const runner = { bootId: handle.bootId, ...handle.runner };
        if (inspect(runner).liveness === "alive") {
          process.kill(runner.pid, "SIGUSR2");
          return true;
        }
      } catch {
        // No cancel.json (disk full, folder gone) or no runner: signal the trainer directly.
      }
    }
    await this.signal(handle, "SIGCONT");
    return this.signal(handle, "SIGTERM");
  }

  graceKeptByRunner(handle: LocalAttemptHandle): boolean {
    return handle.version >= 1;
  }

  async readOutcome(taskDir: string, attempt: number): Promise<ExitRecord | null> {
    return readExitRecord(taskDir, attempt);
  }

  async recoverHandle(taskDir: string, attempt: number): Promise<LocalAttemptHandle | null> {
    const record = readRunnerRecord(taskDir, attempt);
    return record ? handleFrom(taskDir, record, record.runner.pid) : null;
  }

  /**
   * One /proc read per process, no boot id: this studio has not rebooted since the handle was
   * proven (at launch or re-attach). The state is reduced to what a check must see: gone (or
   * another process on the pid), zombie, stopped, alive.
   */
  quickLook(handle: LocalAttemptHandle): string {
    return `${lookAt(handle.runner)}/${lookAt(handle.trainer)}`;
  }

  watch(taskDir: string, onHint: FolderHint): () => void {
    return watchTaskFolder(taskDir, onHint);
  }
}

function lookAt(identity: { pid: number; startTime: string }): string {
  const stat = readStat(identity.pid);
  if (!stat || stat.startTime !== identity.startTime) return "gone";
  if (stat.state === "Z" || stat.state === "X") return "zombie";
  return stat.state === "T" || stat.state === "t" ? "stopped" : "alive";
}

function handleFrom(taskDir: string, record: RunnerRecord, runnerPid: number): LocalAttemptHandle {
  if (record.runner.pid !== runnerPid) {
    throw new Error(
      `runner.json of attempt ${record.attempt} names runner ${record.runner.pid}, not ${runnerPid}`,
    );
  }
  return {
    kind: "local",
    // A version-0 runner wrote no version and cannot carry out cancel.json.
    version: record.version === 0 ? 0 : HANDLE_VERSION,
    taskDir,
    attempt: record.attempt,
    bootId: record.bootId,
    runner: record.runner,
    trainer: record.trainer,
  };
}

function launchFailure(exit: ExitRecord): string {
  return exit.error
    ? `could not start the trainer: ${exit.error}`
    : `the trainer ended before its launch was confirmed`;
}

function processState(identity: ProcessIdentity): ProcessState {
  const seen = inspect(identity);
  if (seen.liveness !== "alive") return seen.liveness;
  return seen.state === "T" ? "stopped" : "alive";
}

/** Signals one process (not a group), only when it is proven ours. */
function signalOne(identity: ProcessIdentity | null, signal: NodeJS.Signals) {
  if (identity && inspect(identity).liveness === "alive") process.kill(identity.pid, signal);
}

/**
 * Starts `runner --daemonize`, which re-spawns itself detached, prints the daemon's pid and
 * exits at once; so this process holds no pipe or child link to the long-lived runner.
 */
function spawnDaemon(runnerPath: string, argv: string[], env: Record<string, string>) {
  return new Promise<number>((resolve, reject) => {
    const first = spawn(process.execPath, [runnerPath, ...argv], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // Next's types make NODE_ENV required in ProcessEnv; a trainer's env need not have it.
      env: env as NodeJS.ProcessEnv,
    });
    let out = "";
    let err = "";
    first.stdout.on("data", (chunk) => {
      out += chunk;
    });
    first.stderr.on("data", (chunk) => {
      err += chunk;
    });
    first.on("error", reject);
    first.on("close", (code, signal) => {
      const pid = /^(\d+)\n/.exec(out)?.[1];
      if (code === 0 && pid) resolve(Number(pid));
      else
        reject(new Error(`the runner did not start (${signal ?? `exit ${code}`}): ${err.trim()}`));
    });
  });
}
