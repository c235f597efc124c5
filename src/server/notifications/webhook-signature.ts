import { createHmac } from "node:crypto";

/**
 * How a receiver knows a delivery came from this studio, and is not a replay: the signature is
 * HMAC-SHA256, keyed with STUDIO_WEBHOOK_SECRET, over `<timestamp>.<raw body>`, where the
 * timestamp (Unix seconds, sent as X-Studio-Timestamp) is the time of this try. A receiver
 * recomputes it, compares in constant time, and refuses a timestamp more than a few minutes
 * old (the README shows how). The same scheme as Stripe's and Slack's own signatures.
 */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `sha256=${mac}`;
}

export interface DeliveryHeadersInput {
  deliveryId: string;
  kind: string;
  body: string;
  secret: string | undefined;
  /** Unix seconds. */
  timestamp: number;
}

/** The headers of one try: the same delivery id on every try, a fresh timestamp and signature. */
export function deliveryHeaders(input: DeliveryHeadersInput): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "finetune-studio",
    "x-studio-delivery": input.deliveryId,
    "x-studio-event": input.kind,
    "x-studio-timestamp": String(input.timestamp),
    ...(input.secret
      ? { "x-studio-signature": webhookSignature(input.secret, input.timestamp, input.body) }
      : {}),
  };
}
