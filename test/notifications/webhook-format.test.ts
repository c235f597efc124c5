import { describe, expect, it } from "vitest";
import {
  readStoredNotification,
  type StoredNotification,
} from "../../src/server/notifications/payload";
import { taskPageUrl, webhookBody } from "../../src/server/notifications/webhook-body";
import {
  deliveryHeaders,
  webhookSignature,
} from "../../src/server/notifications/webhook-signature";
import type { NotificationKind } from "../../src/shared/notification-decision";

const payload: StoredNotification = {
  version: 1,
  kind: "failed",
  eventType: "exited",
  taskId: "t0123456789",
  taskName: "demo",
  attempt: 2,
  message: "failed: out of memory (exit code 1)",
  cause: "out-of-memory",
  at: "2030-01-01T00:00:00.000Z",
};

describe("webhook signature", () => {
  it("is HMAC-SHA256 of `<timestamp>.<body>`, hex (checked against openssl)", () => {
    // printf '%s' '1700000000.{"version":1}' | openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'
    expect(webhookSignature("whsec-0123456789abcdef", 1700000000, '{"version":1}')).toBe(
      "sha256=b5d077445fefce4eddf5b0b9cb084819a3b04a9a1c735e1285756e41a5e784eb",
    );
    // the timestamp is part of what is signed: a replay with a new timestamp does not verify
    expect(webhookSignature("whsec-0123456789abcdef", 1700000001, '{"version":1}')).not.toBe(
      webhookSignature("whsec-0123456789abcdef", 1700000000, '{"version":1}'),
    );
  });

  it("headers: the delivery id, the event, the timestamp, and the signature when a secret is set", () => {
    const input = { deliveryId: "d-1", kind: "failed", body: "{}", timestamp: 1700000000 };
    expect(deliveryHeaders({ ...input, secret: "whsec-0123456789abcdef" })).toEqual({
      "content-type": "application/json",
      "user-agent": "finetune-studio",
      "x-studio-delivery": "d-1",
      "x-studio-event": "failed",
      "x-studio-timestamp": "1700000000",
      "x-studio-signature": webhookSignature("whsec-0123456789abcdef", 1700000000, "{}"),
    });
    expect(deliveryHeaders({ ...input, secret: undefined })).not.toHaveProperty(
      "x-studio-signature",
    );
  });
});

describe("webhook bodies", () => {
  it("json: versioned, with the delivery id, the task, its page, the cause and the time", () => {
    const body = webhookBody({
      payload,
      deliveryId: "d-1",
      format: "json",
      studioUrl: "https://studio.example.org/",
    });
    expect(JSON.parse(body)).toEqual({
      version: 1,
      deliveryId: "d-1",
      event: "failed",
      task: {
        id: "t0123456789",
        name: "demo",
        url: "https://studio.example.org/finetune?task=t0123456789",
      },
      attempt: 2,
      message: "failed: out of memory (exit code 1)",
      cause: "out-of-memory",
      studio: { url: "https://studio.example.org" },
      at: "2030-01-01T00:00:00.000Z",
    });
  });

  it("slack: one text with a headline, the message, the cause and the link", () => {
    const body = webhookBody({
      payload,
      deliveryId: "d-1",
      format: "slack",
      studioUrl: "http://127.0.0.1:3000",
    });
    expect(JSON.parse(body)).toEqual({
      text: [
        '❌ Task "demo" (t0123456789) failed',
        "failed: out of memory (exit code 1)",
        "Cause: out-of-memory",
        "http://127.0.0.1:3000/finetune?task=t0123456789",
      ].join("\n"),
    });
  });

  it("slack: names and messages are shown, never obeyed (no mentions, no links of their own)", () => {
    const body = webhookBody({
      payload: {
        ...payload,
        kind: "completed",
        taskName: "<!channel> & <https://evil.example|click>",
        message: "done <@U123>",
        cause: null,
      },
      deliveryId: "d-1",
      format: "slack",
      studioUrl: "http://127.0.0.1:3000",
    });
    const { text } = JSON.parse(body) as { text: string };
    expect(text).toBe(
      [
        '✅ Task "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" (t0123456789) completed',
        "done &lt;@U123&gt;",
        "http://127.0.0.1:3000/finetune?task=t0123456789",
      ].join("\n"),
    );
  });

  it("slack: a long message is cut to stay under Discord's 2,000 characters", () => {
    const body = webhookBody({
      payload: { ...payload, message: "x".repeat(10_000) },
      deliveryId: "d-1",
      format: "slack",
      studioUrl: "http://127.0.0.1:3000",
    });
    const { text } = JSON.parse(body) as { text: string };
    expect(text.length).toBeLessThan(2_000);
    expect(text).toContain(`${"x".repeat(1_500)}…`);
  });

  it("slack: every kind has its headline", () => {
    const kinds = {
      completed: "completed",
      failed: "failed",
      cancelled: "was cancelled",
      interrupted: "was interrupted",
      "auto-retry": "will be retried automatically",
      "rolled-back": "was rolled back to an earlier checkpoint",
      recovered: "was recovered",
      stalled: "has stalled",
      diverged: "diverged",
    } satisfies Record<NotificationKind, string>;
    for (const [kind, words] of Object.entries(kinds)) {
      const body = webhookBody({
        payload: { ...payload, kind: kind as NotificationKind },
        deliveryId: "d",
        format: "slack",
        studioUrl: "http://s",
      });
      expect((JSON.parse(body) as { text: string }).text.split("\n")[0]).toMatch(
        new RegExp(`\\(t0123456789\\) ${words}$`),
      );
    }
  });

  it("the task page link escapes the id", () => {
    expect(taskPageUrl("http://s:1//", "t a&b")).toBe("http://s:1/finetune?task=t%20a%26b");
  });
});

describe("stored payloads", () => {
  it("reads its own version and refuses a newer one by name, and a broken one with what is wrong", () => {
    expect(readStoredNotification(payload)).toEqual({ ok: true, payload });
    expect(readStoredNotification({ ...payload, version: 2 })).toEqual({
      ok: false,
      problem:
        "its payload is version 2, written by a newer studio (this one reads up to version 1)",
    });
    const broken = readStoredNotification({ ...payload, kind: "exploded" });
    expect(broken.ok).toBe(false);
    expect(!broken.ok && broken.problem).toMatch(/^its payload cannot be read \(kind: /);
    expect(readStoredNotification(null)).toMatchObject({ ok: false });
    expect(readStoredNotification("x")).toMatchObject({ ok: false });
  });
});
