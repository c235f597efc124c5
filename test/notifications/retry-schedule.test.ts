import { describe, expect, it } from "vitest";
import {
  describeTry,
  MAX_DELAY_MS,
  nextStep,
  parseRetryAfter,
  type TryResult,
} from "../../src/server/notifications/retry-schedule";

const policy = { maxAttempts: 5, backoffSeconds: 10 };
const answered = (status: number, retryAfterMs: number | null = null, detail = ""): TryResult => ({
  kind: "answered",
  status,
  retryAfterMs,
  detail,
});
const timeout: TryResult = { kind: "timeout", afterMs: 10_000 };
const refused: TryResult = { kind: "unreachable", error: "ECONNREFUSED: connect ECONNREFUSED" };

describe("delivery retry schedule", () => {
  it("a 2xx delivers, on any try", () => {
    for (const status of [200, 201, 202, 204, 299]) {
      for (const tries of [1, 3, 5]) {
        expect(nextStep(answered(status), tries, policy)).toEqual({ status: "delivered" });
      }
    }
  });

  it("the receiver's own refusal fails at once: 4xx but 408 and 429, 3xx, 1xx", () => {
    for (const status of [100, 300, 301, 302, 307, 308, 400, 401, 403, 404, 405, 410, 413, 422]) {
      const step = nextStep(answered(status, null, "Not Found"), 1, policy);
      expect(step.status).toBe("failed");
      expect(step).toMatchObject({
        error: expect.stringMatching(/^the receiver refused it: HTTP/),
      });
    }
    expect(nextStep(answered(404, null, "Not Found"), 1, policy)).toEqual({
      status: "failed",
      error: "the receiver refused it: HTTP 404 (Not Found)",
    });
  });

  it("5xx, 408, 429, timeouts and connection errors are tried again, doubling the wait", () => {
    for (const result of [
      answered(500),
      answered(502),
      answered(503),
      answered(504),
      answered(599),
      answered(408),
      answered(429),
      timeout,
      refused,
    ]) {
      expect(
        [1, 2, 3, 4].map((tries) => {
          const step = nextStep(result, tries, policy);
          return step.status === "pending" ? step.delayMs : step.status;
        }),
      ).toEqual([10_000, 20_000, 40_000, 80_000]);
    }
  });

  it("gives up after the last try, with the last error", () => {
    expect(nextStep(answered(503, null, "Service Unavailable"), 5, policy)).toEqual({
      status: "failed",
      error: "gave up after 5 tries; the last: HTTP 503 (Service Unavailable)",
    });
    expect(nextStep(timeout, 1, { maxAttempts: 1, backoffSeconds: 10 })).toEqual({
      status: "failed",
      error: "gave up after 1 try; the last: no answer within 10 s",
    });
    // a 2xx on the last try still delivers
    expect(nextStep(answered(200), 5, policy)).toEqual({ status: "delivered" });
  });

  it("waits at most an hour, or longer when the receiver asks (up to an hour)", () => {
    const long = { maxAttempts: 100, backoffSeconds: 3600 };
    expect(nextStep(timeout, 1, long)).toMatchObject({ delayMs: MAX_DELAY_MS });
    expect(nextStep(timeout, 60, long)).toMatchObject({ delayMs: MAX_DELAY_MS });
    expect(nextStep(answered(429, 45_000), 1, policy)).toMatchObject({ delayMs: 45_000 });
    expect(nextStep(answered(503, 1_000), 2, policy)).toMatchObject({ delayMs: 20_000 });
    expect(nextStep(answered(429, 86_400_000), 1, policy)).toMatchObject({ delayMs: MAX_DELAY_MS });
  });

  it("says what went wrong", () => {
    expect(describeTry(answered(500, null, "Internal Server Error: boom"))).toBe(
      "HTTP 500 (Internal Server Error: boom)",
    );
    expect(describeTry(answered(502))).toBe("HTTP 502");
    expect(describeTry({ kind: "timeout", afterMs: 250 })).toBe("no answer within 0.3 s");
    expect(describeTry(refused)).toBe(
      "cannot reach the receiver: ECONNREFUSED: connect ECONNREFUSED",
    );
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Tue, 01 Jan 2030 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Mon, 31 Dec 2029 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter("-5", now)).toBeNull();
  });
});
