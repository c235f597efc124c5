import { describe, expect, it } from "vitest";
import { notifyState, taskNotification } from "../../src/components/browser-notifications";
import { en } from "../../src/i18n/en";
import { zhCN } from "../../src/i18n/zh-CN";
import { NOTIFICATION_KINDS } from "../../src/shared/notification-decision";

const update = (type: string, data: Record<string, unknown> | null = null) => ({
  id: "t1",
  name: "demo",
  event: { id: 42, type, message: "what happened", data },
});

describe("browser notifications", () => {
  it("the control's state, for every permission and choice", () => {
    expect(notifyState(null, true)).toBe("unsupported");
    expect(notifyState(null, false)).toBe("unsupported");
    expect(notifyState("denied", true)).toBe("blocked");
    expect(notifyState("denied", false)).toBe("blocked");
    expect(notifyState("default", true)).toBe("off");
    expect(notifyState("default", false)).toBe("off");
    expect(notifyState("granted", true)).toBe("on");
    expect(notifyState("granted", false)).toBe("off");
  });

  it("the same events as the webhook's, one notification per event", () => {
    expect(taskNotification(update("exited", { status: "completed" }))).toEqual({
      kind: "completed",
      name: "demo",
      body: "what happened",
      tag: "task-event-42",
    });
    expect(taskNotification(update("stalled"))).toMatchObject({ kind: "stalled" });
    expect(taskNotification(update("recovered"))).toMatchObject({ kind: "recovered" });
    expect(taskNotification(update("started"))).toBeNull();
    expect(taskNotification({ id: "t1", name: "demo" })).toBeNull();
  });

  it("every kind has its headline in every language", () => {
    for (const kind of NOTIFICATION_KINDS) {
      expect(en.notify.kind[kind]).toContain("{{name}}");
      expect(zhCN.notify.kind[kind]).toContain("{{name}}");
    }
  });
});
