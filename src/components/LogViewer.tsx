"use client";

import { useQuery } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { RouterOutputs } from "../trpc/types";
import { appendLogLines } from "./log-lines";

type LogLine = RouterOutputs["task"]["logs"]["lines"][number];

const TAIL_LINES = 500;

/**
 * The task's training.log: its recent tail first, then live lines from exactly after the tail's
 * last line (its byte offset is the subscription's starting id), so nothing repeats or is lost,
 * across reconnects and studio restarts too.
 */
export function LogViewer({ id }: { id: string }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const tail = useQuery(
    trpc.task.logs.queryOptions(
      { id, limit: TAIL_LINES },
      { staleTime: Number.POSITIVE_INFINITY, refetchOnWindowFocus: false },
    ),
  );
  const [live, setLive] = useState<LogLine[]>([]);
  const lastTailOffset = tail.data?.lines.at(-1)?.offset;
  useSubscription(
    trpc.task.onLog.subscriptionOptions(
      { id, lastEventId: lastTailOffset === undefined ? null : String(lastTailOffset) },
      {
        enabled: tail.isSuccess,
        onData: ({ data: lines }) => setLive((current) => appendLogLines(current, lines)),
      },
    ),
  );

  const lines = appendLogLines(tail.data?.lines ?? [], live);
  const box = useRef<HTMLPreElement>(null);
  const followEnd = useRef(true);
  useEffect(() => {
    // keep showing the newest line, unless the reader scrolled up to look at older ones
    if (box.current && followEnd.current) box.current.scrollTop = box.current.scrollHeight;
  });

  return (
    <section aria-labelledby="log-title">
      <h3 id="log-title">{t("detail.log")}</h3>
      {lines.length === 0 ? (
        <p className="muted">{t("detail.noLog")}</p>
      ) : (
        <pre
          ref={box}
          className="log"
          data-testid="task-log"
          onScroll={(e) => {
            const el = e.currentTarget;
            followEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
          }}
        >
          {lines.map((line) => (
            <span key={line.offset} className="log-line" data-offset={line.offset}>
              {line.text}
              {"\n"}
            </span>
          ))}
        </pre>
      )}
    </section>
  );
}
