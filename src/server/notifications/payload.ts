import { z } from "zod";
import { NOTIFICATION_KINDS } from "../../shared/notification-decision";

/**
 * What an outbox row keeps of the event that made it (`notification_outbox.payload`), taken
 * when the event is written: the task may be renamed or deleted before the notification goes
 * out. Versioned like every record the studio keeps: a reader takes every version it knows and
 * refuses a newer one by name.
 */
export const NOTIFICATION_PAYLOAD_VERSION = 1;

const storedNotificationSchema = z.object({
  version: z.literal(NOTIFICATION_PAYLOAD_VERSION),
  kind: z.enum(NOTIFICATION_KINDS),
  /** The task event's own type (`exited`, `lost`, …). */
  eventType: z.string(),
  taskId: z.string(),
  taskName: z.string(),
  attempt: z.number().int().nullable(),
  message: z.string(),
  /** Why a failed trainer failed, when it was named (src/server/supervisor/failure-cause.ts). */
  cause: z.string().nullable(),
  /** When the event was written (ISO 8601). */
  at: z.string(),
});
export type StoredNotification = z.infer<typeof storedNotificationSchema>;

export type PayloadReading =
  | { ok: true; payload: StoredNotification }
  | { ok: false; problem: string };

/** Reads a stored payload; what is wrong with it otherwise, in words. */
export function readStoredNotification(value: unknown): PayloadReading {
  const version =
    typeof value === "object" && value !== null ? (value as { version?: unknown }).version : null;
  if (typeof version === "number" && version > NOTIFICATION_PAYLOAD_VERSION) {
    return {
      ok: false,
      problem: `its payload is version ${version}, written by a newer studio (this one reads up to version ${NOTIFICATION_PAYLOAD_VERSION})`,
    };
  }
  const parsed = storedNotificationSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      problem: `its payload cannot be read (${issue?.path.join(".") || "payload"}: ${issue?.message})`,
    };
  }
  return { ok: true, payload: parsed.data };
}
