/**
 * Which queued tasks start now, and on which GPUs. Pure: the supervisor loop passes what the
 * database says and carries out the plan (each start still goes through the conditional update
 * that makes starting idempotent).
 *
 * Policy: strict FIFO, no overtaking. When the task at the head of the queue cannot start (no free
 * slot, or not enough free GPUs), every task behind it waits too, even one that would fit: a
 * 4-GPU task is never starved by a stream of 1-GPU tasks slipping past it. The price is idle
 * GPUs while the head waits; each waiting task's reason (`waitingReason`) tells the person why.
 * A task that can never start on this machine (GPUs asked on a CPU-only machine, or more GPUs than
 * configured) is reported unschedulable and does not block the queue.
 */

export type QueuedTask = { taskId: string; gpusRequested: number };
export type RunningTask = { taskId: string; gpus: string[] };

export type SchedulerInput = {
  /** In queue order, head first. */
  queued: QueuedTask[];
  running: RunningTask[];
  /** The most tasks running at once, GPU and CPU slots together. */
  concurrency: number;
  /** GPU ids to hand out (CUDA_VISIBLE_DEVICES values); empty on a CPU-only machine. */
  gpuIds: string[];
};

/** slots-busy: `concurrency` tasks run; gpus-busy: too few free GPUs for the head; behind-head: FIFO. */
export type WaitReason = "slots-busy" | "gpus-busy" | "behind-head";
export type UnschedulableReason = "no-gpus-configured" | "too-many-gpus";

export type StartPlan = {
  /** In queue order; `gpus` empty for a CPU slot. */
  starts: { taskId: string; gpus: string[] }[];
  /** `position` 1 is next to start. */
  waiting: { taskId: string; position: number; reason: WaitReason }[];
  unschedulable: { taskId: string; reason: UnschedulableReason }[];
};

/** A waiting task's reason in words, shown as its status reason while it is queued. */
export function waitingReason(
  reason: WaitReason,
  task: { gpusRequested: number },
  concurrency: number,
): string {
  switch (reason) {
    case "slots-busy":
      return `waiting for a free slot (${concurrency} ${concurrency === 1 ? "task runs" : "tasks run"} at once)`;
    case "gpus-busy":
      return `waiting for ${task.gpusRequested} free GPU${task.gpusRequested === 1 ? "" : "s"}`;
    case "behind-head":
      return "waiting behind the task at the head of the queue (first in, first out)";
  }
}

/** Throws on input that only a bug can produce (duplicate ids, a task both queued and running). */
export function planStarts(input: SchedulerInput): StartPlan {
  checkInput(input);
  const configured = [...new Set(input.gpuIds)];
  const busy = new Set(input.running.flatMap((task) => task.gpus));
  const free = configured.filter((gpu) => !busy.has(gpu));
  let freeSlots = input.concurrency - input.running.length;
  let headBlocked = false;
  const plan: StartPlan = { starts: [], waiting: [], unschedulable: [] };

  for (const { taskId, gpusRequested } of input.queued) {
    if (gpusRequested > 0 && configured.length === 0) {
      plan.unschedulable.push({ taskId, reason: "no-gpus-configured" });
    } else if (gpusRequested > configured.length) {
      plan.unschedulable.push({ taskId, reason: "too-many-gpus" });
    } else if (freeSlots <= 0 || headBlocked || gpusRequested > free.length) {
      const reason: WaitReason =
        freeSlots <= 0 ? "slots-busy" : headBlocked ? "behind-head" : "gpus-busy";
      headBlocked = true;
      plan.waiting.push({ taskId, position: plan.waiting.length + 1, reason });
    } else {
      // Lowest configured GPUs first, so a machine's GPU 0 is the one busy on a light load.
      plan.starts.push({ taskId, gpus: free.splice(0, gpusRequested) });
      freeSlots--;
    }
  }
  return plan;
}

function checkInput({ queued, running, concurrency }: SchedulerInput): void {
  if (!Number.isInteger(concurrency) || concurrency < 0) {
    throw new Error(`concurrency must be a whole number >= 0, got ${concurrency}`);
  }
  const seen = new Set<string>();
  for (const { taskId } of running) {
    if (seen.has(taskId)) throw new Error(`task ${taskId} is listed as running twice`);
    seen.add(taskId);
  }
  for (const { taskId, gpusRequested } of queued) {
    if (seen.has(taskId)) throw new Error(`task ${taskId} is listed twice (queued or running)`);
    seen.add(taskId);
    if (!Number.isInteger(gpusRequested) || gpusRequested < 0) {
      throw new Error(
        `task ${taskId}: gpusRequested must be a whole number >= 0, got ${gpusRequested}`,
      );
    }
  }
}
