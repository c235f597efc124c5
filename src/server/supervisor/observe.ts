import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { RecordUnreadable } from "../../runner/record-schemas";
import type { AttemptHandle, Executor } from "./executor";
import type { ReconcileInput } from "./reconcile";

/**
 * Gathers what reconciliation needs about one attempt, through any executor: its outcome
 * record, the handle the runner recorded when none was stored, and its processes' states. Never
 * throws: an unreadable record becomes an observation naming the file, an executor that cannot
 * answer becomes "unknown", so one attempt's trouble stays that attempt's.
 */
export async function observeAttempt(
  executor: Executor,
  taskDir: string,
  attempt: { number: number; handle: AttemptHandle | null },
): Promise<ReconcileInput["observed"]> {
  const exit = await read(() => executor.readOutcome(taskDir, attempt.number));
  const recovered = attempt.handle
    ? { value: null, problem: null }
    : await read(() => executor.recoverHandle(taskDir, attempt.number));
  const handle = attempt.handle ?? recovered.value;
  let processes: ReconcileInput["observed"]["processes"] = null;
  if (handle) {
    try {
      processes = await executor.inspect(handle);
    } catch {
      processes = "unknown";
    }
  }
  return {
    exit: exit.value,
    exitProblem: exit.problem,
    recoveredHandle: recovered.value,
    recoveredProblem: recovered.problem,
    processes,
  };
}

async function read<T>(
  fn: () => Promise<T | null>,
): Promise<{ value: T | null; problem: string | null }> {
  try {
    return { value: await fn(), problem: null };
  } catch (err) {
    if (err instanceof RecordUnreadable) return { value: null, problem: err.message };
    // Not the file's fault (a cluster controller that did not answer): nothing seen this time.
    return { value: null, problem: null };
  }
}

/** Whether the task folder holds a checkpoint to resume from. */
export function hasCheckpoint(dir: string): boolean {
  const checkpoints = join(dir, "checkpoints");
  try {
    return existsSync(checkpoints) && readdirSync(checkpoints).some((n) => !n.startsWith("."));
  } catch {
    return false;
  }
}
