import { describe, expect, it } from "vitest";
import { type NotificationKind, notificationFor } from "../../src/shared/notification-decision";
import { TASK_EVENT_TYPES, type TaskEventType } from "../../src/shared/task-event-types";

/** Every event type the studio writes, with what it makes (exited: see below). */
const EXPECTED: Record<TaskEventType, NotificationKind | null> = {
  created: null,
  queued: null,
  "auto-retry": "auto-retry",
  "rolled-back": "rolled-back",
  "retry-policy": null,
  unschedulable: "cancelled",
  preparing: null,
  started: null,
  paused: null,
  resumed: null,
  "cancel-requested": null,
  cancelled: "cancelled",
  exited: null,
  failed: "failed",
  lost: "failed",
  interrupted: "interrupted",
  recovered: "recovered",
  rebuilt: null,
  stalled: "stalled",
  "stall-cleared": null,
  diverged: "diverged",
  warning: null,
};

describe("which events notify", () => {
  it.each(TASK_EVENT_TYPES.filter((t) => t !== "exited"))("%s", (type) => {
    expect(notificationFor(type, null)).toBe(EXPECTED[type]);
    // data other than an outcome's status changes nothing
    expect(notificationFor(type, { status: "completed", cause: "killed" })).toBe(EXPECTED[type]);
  });

  it("exited: the outcome's status names it", () => {
    expect(notificationFor("exited", { status: "completed", exitCode: 0 })).toBe("completed");
    expect(notificationFor("exited", { status: "failed", cause: "out-of-memory" })).toBe("failed");
    expect(notificationFor("exited", { status: "cancelled", signal: "SIGTERM" })).toBe("cancelled");
    // an exited event without a known outcome (none is written so) makes none
    expect(notificationFor("exited", null)).toBeNull();
    expect(notificationFor("exited", {})).toBeNull();
    expect(notificationFor("exited", { status: "training" })).toBeNull();
    expect(notificationFor("exited", { status: "toString" })).toBeNull();
    expect(notificationFor("exited", { status: 1 })).toBeNull();
  });

  it("event types this studio does not write make none", () => {
    for (const type of ["checkpoint", "completed", "", "toString", "__proto__", "constructor"]) {
      expect(notificationFor(type, { status: "failed" })).toBeNull();
    }
  });
});
