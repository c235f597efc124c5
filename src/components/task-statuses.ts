import type { TaskStatusName } from "../trpc/types";

/**
 * The statuses in lifecycle order, for the filter. The list lives in a server module the page
 * may not import; this record makes the compiler reject a status added there and missing here.
 */
const ORDER: Record<TaskStatusName, number> = {
  pending: 0,
  queued: 1,
  preparing: 2,
  training: 3,
  paused: 4,
  completed: 5,
  failed: 6,
  cancelled: 7,
  interrupted: 8,
};

export const TASK_STATUSES = (Object.keys(ORDER) as TaskStatusName[]).sort(
  (a, b) => ORDER[a] - ORDER[b],
);

/** A task in these statuses has stopped (until a retry queues it again): its log will not grow. */
export const ENDED_STATUSES: readonly TaskStatusName[] = [
  "completed",
  "failed",
  "cancelled",
  "interrupted",
];

/** A task in these statuses may have a trainer: checkpoints may still come. */
export const ACTIVE_STATUSES: readonly TaskStatusName[] = ["preparing", "training", "paused"];
