/** What the monitor records when training.log is tampered with (see AttemptMonitor). */
export type LogWarningKind = "deleted" | "replaced" | "truncated" | "missing";

type EventLike = { type: string; message: string; attempt: number | null; data: unknown };

/**
 * The warnings about training.log among a task's events, for the attempt shown (the newest
 * attempt when `attempt` is null), oldest first: the log view names them, so a log that shows
 * less than the trainer printed says why.
 */
export function logWarnings<T extends EventLike>(
  events: readonly T[],
  attempt: number | null,
): T[] {
  const ofLog = events.filter((event) => {
    if (event.type !== "warning") return false;
    const data = event.data as { file?: unknown } | null;
    return data?.file === "training.log";
  });
  const latest = attempt ?? Math.max(0, ...ofLog.map((e) => e.attempt ?? 0));
  return ofLog.filter((event) => (event.attempt ?? 0) === latest);
}
