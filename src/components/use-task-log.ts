"use client";

import { useCallback, useEffect, useRef, useState } from "react";
import { useTRPCClient } from "../trpc/context";
import type { RouterOutputs } from "../trpc/types";
import { keepSubscribed, type LiveState } from "./keep-subscribed";
import { appendLogLines, MAX_LOG_LINES, prependLogLines } from "./log-lines";

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
 * The open task's training.log: a recent tail, then live batches from exactly after the last
 * line received (its byte offset is the resume id, across reconnects and studio restarts), and
 * older pages on request. Batches are gathered and drawn at most once per animation frame, so a
 * trainer printing thousands of lines a second costs one render a frame.
 */
export function useTaskLog(id: string) {
  const client = useTRPCClient();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<LiveState>("connecting");
  const [reachedStart, setReachedStart] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const current = useRef<LogLine[]>([]);
  const unstamped = useRef<LogLine[]>([]);

  useEffect(() => {
    let cancelled = false;
    let stop = () => {};
    let frame = 0;
    let pending: LogLine[] = [];
    let lastOffset: number | null = null;
    current.current = [];
    setLines([]);
    if (window.__studioLogHook) window.__studioLog = { taskId: id, lines: [] };

    const flush = () => {
      frame = 0;
      const batch = pending;
      pending = [];
      current.current = appendLogLines(current.current, batch);
      if (window.__studioLog?.taskId === id) unstamped.current.push(...batch);
      setLines(current.current);
    };
    const deliver = (batch: readonly LogLine[]) => {
      if (batch.length === 0) return;
      lastOffset = batch.at(-1)!.offset;
      pending.push(...batch);
      // frames do not run in a hidden tab: keep only what could be shown
      if (pending.length > MAX_LOG_LINES) pending = pending.slice(-MAX_LOG_LINES);
      if (!frame) frame = requestAnimationFrame(flush);
    };

    void (async () => {
      while (!cancelled) {
        try {
          const tail = await client.task.logs.query({ id, limit: TAIL_LINES });
          if (cancelled) return;
          deliver(tail.lines);
          setReachedStart(tail.reachedStart);
          break;
        } catch {
          setState("reconnecting");
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
      if (cancelled) return;
      stop = keepSubscribed<{ data: LogLine[] }>({
        open: (handlers) =>
          client.task.onLog.subscribe(
            { id, lastEventId: lastOffset === null ? null : String(lastOffset) },
            handlers,
          ),
        onData: (event) => deliver(event.data),
        onState: setState,
        retryMs: RETRY_MS,
      });
    })();
    return () => {
      cancelled = true;
      stop();
      cancelAnimationFrame(frame);
    };
  }, [client, id]);

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
