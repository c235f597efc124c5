"use client";

import { useEffect, useRef } from "react";

/** How long a stream the studio answered with an error waits before it is asked for again. */
export const STREAM_RETRY_MS = 2_000;

/**
 * Asks again for a stream that ended in an error. The browser's EventSource reconnects by itself
 * after a dropped connection, but gives up on an HTTP error: what a studio answers while its
 * database is down and a token is set (a session cannot be checked), or while it is starting.
 * Those pass, so the page tries again rather than stay disconnected until a reload.
 */
export function useRetryAfterError(status: string, retry: () => void): void {
  const latest = useRef(retry);
  latest.current = retry;
  useEffect(() => {
    if (status !== "error") return;
    const timer = setTimeout(() => latest.current(), STREAM_RETRY_MS);
    return () => clearTimeout(timer);
  }, [status]);
}
