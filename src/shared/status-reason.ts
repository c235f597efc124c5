/**
 * A task's status reason, when it says more than the status does. "finished" on a completed
 * task or "cancelled" on a cancelled one repeats the status, so page and CLI leave it out;
 * "trainer exited with code 1" or "cancelled before it started" stay.
 */
export function tellingReason(status: string, reason: string | null): string | null {
  if (!reason) return null;
  const said = reason.trim().toLowerCase();
  if (said === status || (status === "completed" && said === "finished")) return null;
  return reason;
}
