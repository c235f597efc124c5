/**
 * What one delivery try means for its notification, pure. A 2xx answer delivers it. The
 * receiver's own refusal (a 4xx other than 408 and 429, or a redirect) would be the same on
 * every try: the notification fails at once, naming it. Anything that may pass on its own (a
 * 5xx, 408, 429, no answer in time, no connection) is tried again after a doubling wait (the
 * receiver's Retry-After when it asks for longer), until `maxAttempts` tries were made.
 *
 * No jitter: one studio delivers for a database, one notification at a time, so there is no
 * crowd of clients to spread out.
 */

/** How a try ended, as the poster (./webhook-post) saw it. */
export type TryResult =
  | {
      kind: "answered";
      status: number;
      /** The receiver's Retry-After, in ms, when it sent one. */
      retryAfterMs: number | null;
      /** A short account for the log: status text, start of the body, a redirect's target. */
      detail: string;
    }
  | { kind: "timeout"; afterMs: number }
  | { kind: "unreachable"; error: string };

export interface DeliveryPolicy {
  /** Tries in all, the first included. */
  maxAttempts: number;
  /** The wait after the first failed try; each further one waits twice as long. */
  backoffSeconds: number;
}

export type NextStep =
  | { status: "delivered" }
  | { status: "pending"; delayMs: number; error: string }
  | { status: "failed"; error: string };

export const MAX_DELAY_MS = 3_600_000;

/** What went wrong with a try that did not deliver, in words. */
export function describeTry(result: TryResult): string {
  switch (result.kind) {
    case "answered":
      return `HTTP ${result.status}${result.detail ? ` (${result.detail})` : ""}`;
    case "timeout":
      return `no answer within ${Math.round(result.afterMs / 100) / 10} s`;
    case "unreachable":
      return `cannot reach the receiver: ${result.error}`;
  }
}

function outcomeOf(result: TryResult): "delivered" | "retry" | "refused" {
  if (result.kind !== "answered") return "retry";
  const { status } = result;
  if (status >= 200 && status < 300) return "delivered";
  if (status === 408 || status === 429 || status >= 500) return "retry";
  return "refused";
}

/** After try number `attemptsMade` (1 for the first) ended with `result`: what next. */
export function nextStep(
  result: TryResult,
  attemptsMade: number,
  policy: DeliveryPolicy,
): NextStep {
  const outcome = outcomeOf(result);
  if (outcome === "delivered") return { status: "delivered" };
  const error = describeTry(result);
  if (outcome === "refused") {
    return { status: "failed", error: `the receiver refused it: ${error}` };
  }
  if (attemptsMade >= policy.maxAttempts) {
    return {
      status: "failed",
      error: `gave up after ${attemptsMade} ${attemptsMade === 1 ? "try" : "tries"}; the last: ${error}`,
    };
  }
  const backoff = Math.min(MAX_DELAY_MS, policy.backoffSeconds * 1000 * 2 ** (attemptsMade - 1));
  const asked = result.kind === "answered" ? (result.retryAfterMs ?? 0) : 0;
  return { status: "pending", delayMs: Math.max(backoff, Math.min(asked, MAX_DELAY_MS)), error };
}

/** A Retry-After header (seconds, or an HTTP date) in ms from `now`; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names its month ("Tue, 01 Jan 2030 …"); Date.parse alone takes "-5" as a year.
  if (!/[A-Za-z]{3}/.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
