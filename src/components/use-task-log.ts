"use client";

import { skipToken, useQuery } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useCallback, useEffect, useRef, useState } from "react";
import { useTRPC, useTRPCClient } from "../trpc/context";
import type { RouterOutputs } from "../trpc/types";
import { type LiveState, liveState } from "./live-state";
import { appendLogLines, MAX_LOG_LINES, prependLogLines } from "./log-lines";
import { useRetryAfterError } from "./use-retry-after-error";

export type LogLine = RouterOutputs["task"]["logs"]["lines"][number];

/** Lines shown first on opening a task; older ones load as the reader scrolls up. */
const TAIL_LINES = 500;
const OLDER_PAGE_LINES = 1_000;
const RETRY_MS = 1_000;

/** Every line the view showed, with when it showed it: set `__studioLogHook` to collect (tests). */
export interface LogTestHook {
  taskId: string;
  lines: { offset: number; text: string; shownAt: number }[];
}
declare global {
  interface Window {
    __studioLogHook?: boolean;
    __studioLog?: LogTestHook;
  }
}

/**
 * The open task's training.log: a recent tail, then live batches from exactly after the tail's
 * last line, and older pages on request. The stream's event ids are byte offsets in the log: when
 * a connection drops (a studio restart, a recycled stream) the browser reconnects with the last
 * one received and the stream resumes after it. Batches are gathered and drawn at most once per
 * animation frame, so a trainer printing thousands of lines a second costs one render a frame.
 */
export function useTaskLog(id: string) {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [reachedStart, setReachedStart] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  /** Where the live stream of task `id` starts: after the tail's last line (null: an empty log). */
  const [streamFrom, setStreamFrom] = useState<{ id: string; offset: number | null } | null>(null);
  const current = useRef<LogLine[]>([]);
  const unstamped = useRef<LogLine[]>([]);
  const pending = useRef<LogLine[]>([]);
  const frame = useRef(0);
  const streaming = streamFrom?.id === id;

  // Another task: start over.
  useEffect(() => {
    current.current = [];
    pending.current = [];
    setLines([]);
    setReachedStart(false);
    if (window.__studioLogHook) window.__studioLog = { taskId: id, lines: [] };
    return () => {
      cancelAnimationFrame(frame.current);
      frame.current = 0;
    };
  }, [id]);

  const deliver = useCallback(
    (batch: readonly LogLine[]) => {
      if (batch.length === 0) return;
      pending.current.push(...batch);
      // frames do not run in a hidden tab: keep only what could be shown
      if (pending.current.length > MAX_LOG_LINES) {
        pending.current = pending.current.slice(-MAX_LOG_LINES);
      }
      if (frame.current) return;
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        const drawn = pending.current;
        pending.current = [];
        current.current = appendLogLines(current.current, drawn);
        if (window.__studioLog?.taskId === id) unstamped.current.push(...drawn);
        setLines(current.current);
      });
    },
    [id],
  );

  const tail = useQuery({
    ...trpc.task.logs.queryOptions({ id, limit: TAIL_LINES }),
    // read once per opening, never again under the stream that continues after it
    enabled: !streaming,
    staleTime: Number.POSITIVE_INFINITY,
    gcTime: 0,
    retry: true,
    retryDelay: RETRY_MS,
  });
  useEffect(() => {
    if (streaming || !tail.data) return;
    deliver(tail.data.lines);
    setReachedStart(tail.data.reachedStart);
    setStreamFrom({ id, offset: tail.data.lines.at(-1)?.offset ?? null });
  }, [tail.data, streaming, id, deliver]);

  const stream = useSubscription(
    trpc.task.onLog.subscriptionOptions(
      streaming
        ? { id, lastEventId: streamFrom.offset === null ? null : String(streamFrom.offset) }
        : skipToken,
      { onData: (event) => deliver(event.data) },
    ),
  );
  // Asked for again after the last line delivered (a reset alone would start after the tail).
  useRetryAfterError(stream.status, () => {
    const last = pending.current.at(-1)?.offset ?? current.current.at(-1)?.offset ?? null;
    if (last !== null && last !== streamFrom?.offset) setStreamFrom({ id, offset: last });
    else stream.reset();
  });
  const state: LiveState = streaming
    ? liveState(stream)
    : tail.failureCount > 0
      ? "reconnecting"
      : "connecting";

  // stamped after React committed them: the moment they are on the page
  useEffect(() => {
    const hook = window.__studioLog;
    if (!hook || hook.taskId !== id || lines.length === 0) return;
    const shownAt = Date.now();
    for (const line of unstamped.current.splice(0)) hook.lines.push({ ...line, shownAt });
  }, [lines, id]);

  const loadOlder = useCallback(async () => {
    const first = current.current[0];
    if (!first || reachedStart || loadingOlder || current.current.length >= MAX_LOG_LINES) return;
    setLoadingOlder(true);
    try {
      const page = await client.task.logs.query({
        id,
        before: first.offset,
        limit: OLDER_PAGE_LINES,
      });
      current.current = prependLogLines(page.lines, current.current);
      setLines(current.current);
      setReachedStart(page.reachedStart);
    } finally {
      setLoadingOlder(false);
    }
  }, [client, id, reachedStart, loadingOlder]);

  return { lines, state, reachedStart, loadingOlder, loadOlder };
}
