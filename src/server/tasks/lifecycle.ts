/**
 * The task lifecycle, in one table. Every change of status goes through `transition()`
 * (./repository), which checks it with `canTransition` and makes the database update conditional
 * on the status it came from, so two writers racing on one task cannot both win. Only rows being
 * created are written without it: a new task (pending), or one rebuilt from its folder.
 */
export const TASK_STATUSES = [
  "pending",
  "queued",
  "preparing",
  "training",
  "paused",
  "completed",
  "failed",
  "cancelled",
  "interrupted",
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ["queued", "cancelled"],
  queued: ["preparing", "cancelled"],
  // preparing = attempt recorded, launch in flight; a launch that cannot be confirmed fails.
  preparing: ["training", "failed", "cancelled", "completed", "interrupted"],
  training: ["paused", "completed", "failed", "cancelled", "interrupted"],
  paused: ["training", "completed", "failed", "cancelled", "interrupted"],
  completed: [],
  // retry and resume-from-checkpoint put a task back in the queue as a new attempt
  failed: ["queued"],
  cancelled: ["queued"],
  interrupted: ["queued", "failed"],
};

export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "cancelled"];
/** Statuses in which a trainer process may exist. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = ["preparing", "training", "paused"];
/** Statuses the supervisor still has work for: waiting in the queue, or active. */
export const OPEN_STATUSES: readonly TaskStatus[] = ["queued", ...ACTIVE_STATUSES];
/** Statuses from which retry (and resume from a checkpoint) queue a new attempt. */
export const RETRYABLE_STATUSES: readonly TaskStatus[] = ["failed", "cancelled", "interrupted"];

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The statuses a task may be in for `to` to be a legal next status. */
export function sourcesOf(to: TaskStatus): TaskStatus[] {
  return TASK_STATUSES.filter((from) => canTransition(from, to));
}

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function isActive(status: TaskStatus): boolean {
  return ACTIVE_STATUSES.includes(status);
}

/** Which user actions the page and CLI offer in each status. */
export function allowedActions(status: TaskStatus, hasCheckpoint: boolean) {
  return {
    start: status === "pending",
    cancel: status === "pending" || status === "queued" || isActive(status),
    pause: status === "training",
    resume: status === "paused",
    retry: RETRYABLE_STATUSES.includes(status),
    resumeFromCheckpoint: hasCheckpoint && RETRYABLE_STATUSES.includes(status),
    delete: !isActive(status),
  };
}
