import { parseRetryAfter, type TryResult } from "./retry-schedule";

export interface PostInput {
  url: string;
  body: string;
  headers: Record<string, string>;
  /** The whole try (connect, send, answer, the start of its body) must end within this. */
  timeoutMs: number;
  /** Aborts the try when the studio stops supervising; the caller then records nothing. */
  signal: AbortSignal;
}

/** How much of an answer's body is read for the log. */
const DETAIL_BYTES = 512;

/**
 * One POST to the receiver, and how it ended; never throws. Redirects are not followed (a signed
 * body is not sent to an address nobody configured): a 3xx is reported with where it points.
 */
export async function postWebhook(input: PostInput): Promise<TryResult> {
  const timeout = AbortSignal.timeout(input.timeoutMs);
  try {
    const res = await fetch(input.url, {
      method: "POST",
      headers: input.headers,
      body: input.body,
      redirect: "manual",
      signal: AbortSignal.any([timeout, input.signal]),
    });
    const location = res.headers.get("location");
    const text = await readStart(res);
    const detail =
      res.status >= 300 && res.status < 400
        ? `redirected to ${location ?? "nowhere"}; set STUDIO_WEBHOOK_URL to the address it points to`
        : [res.statusText, text].filter(Boolean).join(": ");
    return {
      kind: "answered",
      status: res.status,
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), Date.now()),
      detail,
    };
  } catch (err) {
    if (timeout.aborted) return { kind: "timeout", afterMs: input.timeoutMs };
    return { kind: "unreachable", error: describeFetchError(err) };
  }
}

/**
 * The first bytes of the body, on one line; the rest is not waited for. The status is the
 * answer: a body that breaks off or times out changes nothing about it.
 */
async function readStart(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < DETAIL_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // what arrived is enough for the log
  } finally {
    await reader.cancel().catch(() => {});
  }
  const text = Buffer.concat(chunks).subarray(0, DETAIL_BYTES).toString("utf8");
  return text.replace(/\s+/g, " ").trim();
}

/** fetch's own error says "fetch failed"; the reason is in its cause (ECONNREFUSED, ENOTFOUND, …). */
function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: unknown })?.cause;
  const inner = cause instanceof Error ? cause : err instanceof Error ? err : null;
  if (!inner) return String(err);
  const code = (inner as { code?: unknown }).code;
  return typeof code === "string" && !inner.message.includes(code)
    ? `${code}: ${inner.message}`
    : inner.message;
}
