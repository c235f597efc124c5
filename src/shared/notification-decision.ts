import type { TaskEventType } from "./task-event-types";

/**
 * What a person is told about, in the words of a notification: a task ended (completed, failed,
 * cancelled, interrupted by a reboot), was recovered (queued again by the retry policy, rolled
 * back after a divergence, or followed again after a restart or a takeover), or a watchdog fired
 * (stalled, diverged). The webhook's `event` field and the page's browser notifications both
 * name one of these.
 */
export const NOTIFICATION_KINDS = [
  "completed",
  "failed",
  "cancelled",
  "interrupted",
  "auto-retry",
  "rolled-back",
  "recovered",
  "stalled",
  "diverged",
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/** `exited` events carry the outcome's status in their data: the kind follows it. */
const OUTCOME_KINDS: Record<string, NotificationKind> = {
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

/**
 * Which event makes which notification, for every event the studio writes. A Record, so a new
 * event type cannot be added without deciding here.
 */
const KIND_OF: Record<TaskEventType, NotificationKind | "by-outcome" | null> = {
  created: null,
  queued: null,
  "auto-retry": "auto-retry",
  "rolled-back": "rolled-back",
  // Why a failure was not retried: the failure itself was already notified.
  "retry-policy": null,
  // Cancelled by the scheduler: it can never be given what it asks for.
  unschedulable: "cancelled",
  preparing: null,
  started: null,
  paused: null,
  resumed: null,
  "cancel-requested": null,
  cancelled: "cancelled",
  exited: "by-outcome",
  failed: "failed",
  // The runner vanished with no outcome: the task failed.
  lost: "failed",
  interrupted: "interrupted",
  recovered: "recovered",
  rebuilt: null,
  stalled: "stalled",
  "stall-cleared": null,
  // The divergence watchdog: its stop (or its warning) itself, before the attempt's end.
  diverged: "diverged",
  warning: null,
};

/**
 * The notification an event makes, or null. Pure; the outbox write (at the event's insert) and
 * the page (on a live update) both ask it, so they agree. An event type this studio does not
 * write (an older studio's) makes none.
 */
export function notificationFor(
  type: string,
  data: Record<string, unknown> | null | undefined,
): NotificationKind | null {
  const kind = Object.hasOwn(KIND_OF, type) ? KIND_OF[type as TaskEventType] : null;
  if (kind !== "by-outcome") return kind;
  const status = data?.status;
  return typeof status === "string" && Object.hasOwn(OUTCOME_KINDS, status)
    ? OUTCOME_KINDS[status]!
    : null;
}
