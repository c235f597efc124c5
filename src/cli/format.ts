/** Plain aligned columns for a terminal; `--json` output bypasses this. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n");
}

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (value instanceof Date) return value.toISOString().replace("T", " ").slice(0, 19);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function print(json: boolean, data: unknown, human: () => string) {
  console.log(json ? JSON.stringify(data, null, 2) : human());
}

export interface NotificationsInfo {
  webhook: { host: string; format: string } | null;
  outbox: {
    pending: number;
    delivered: number;
    failed: number;
    lastFailure: { deliveryId: string; taskId: string; kind: string; error: string | null } | null;
  } | null;
}

/** `studio status`'s notifications line: where they go, the outbox's counts, the last failure. */
export function describeNotifications(n: NotificationsInfo): string {
  const where = n.webhook ? `webhook to ${n.webhook.host} (${n.webhook.format})` : "no webhook";
  if (!n.outbox) return `${where}; outbox unknown (the database did not answer)`;
  const { pending, delivered, failed, lastFailure } = n.outbox;
  const counts = `${pending} pending, ${delivered} delivered, ${failed} failed`;
  const last = lastFailure
    ? `; last failed: ${lastFailure.kind} of task ${lastFailure.taskId} (delivery ${lastFailure.deliveryId}): ${lastFailure.error ?? "no error recorded"}`
    : "";
  return `${where}; ${counts}${last}`;
}
