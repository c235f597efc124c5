/**
 * Every kind of event the studio records in a task's history (`task_events.type`). The column
 * stays plain text (rows written by older studios may hold kinds no longer written); what this
 * studio writes is one of these, so every decision about events (which ones notify) is made for
 * each of them.
 */
export const TASK_EVENT_TYPES = [
  "created",
  "queued",
  "auto-retry",
  "rolled-back",
  "retry-policy",
  "unschedulable",
  "preparing",
  "started",
  "paused",
  "resumed",
  "cancel-requested",
  "cancelled",
  "exited",
  "failed",
  "lost",
  "interrupted",
  "recovered",
  "rebuilt",
  "stalled",
  "stall-cleared",
  "diverged",
  "warning",
] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];
