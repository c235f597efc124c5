import type { TRPCSubscriptionStatus } from "@trpc/tanstack-react-query";

/** What the page tells the reader about one stream. */
export type LiveState = "connecting" | "live" | "reconnecting" | "disconnected";

/**
 * A stream's state from its `useSubscription` result. The link reports "connecting" with an
 * error whenever a connection it had dropped (a studio restart, a recycled stream, a network
 * fault) while the browser's EventSource connects again: reconnecting. "connecting" without one
 * is the first attempt. A stream the studio answered with an error is asked for again
 * (./use-retry-after-error): reconnecting too. Only a stream nobody asked for is disconnected.
 */
export function liveState(stream: { status: TRPCSubscriptionStatus; error: unknown }): LiveState {
  switch (stream.status) {
    case "pending":
      return "live";
    case "connecting":
      return stream.error ? "reconnecting" : "connecting";
    case "error":
      return "reconnecting";
    case "idle":
      return "disconnected";
  }
}
