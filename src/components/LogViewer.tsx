"use client";

import { useVirtualizer } from "@tanstack/react-virtual";
import { useLayoutEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { LiveIndicator } from "./LiveIndicator";
import { displayText } from "./log-lines";
import { type LogLine, useTaskLog } from "./use-task-log";

/** Every row has one height, so positions are arithmetic and nothing needs measuring. */
const ROW_PX = 18;
/** Older lines start loading this close to the top. */
const LOAD_OLDER_PX = ROW_PX * 40;
const AT_END_PX = ROW_PX * 1.5;

/** Index of the first line at or after `offset` (offsets grow down the list). */
function indexOfOffset(lines: readonly LogLine[], offset: number): number {
  let low = 0;
  let high = lines.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (lines[mid]!.offset < offset) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The open task's training.log, virtualized: only the visible rows exist in the page. While
 * following, it stays at the newest line; a reader who scrolls up stops following, and the line
 * they look at stays put as new lines arrive, old ones drop off, or older pages load above.
 * `ended`: the task has finished, so the log will not grow (the stream stays open for a retry).
 */
export function LogViewer({ id, ended }: { id: string; ended: boolean }) {
  const { t } = useTranslation();
  const { lines, state, reachedStart, loadingOlder, loadOlder } = useTaskLog(id);
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ offset: number; delta: number } | null>(null);
  const virtualizer = useVirtualizer({
    count: lines.length,
    getScrollElement: () => box.current,
    estimateSize: () => ROW_PX,
    getItemKey: (index) => lines[index]!.offset,
    overscan: 30,
  });

  useLayoutEffect(() => {
    const el = box.current;
    if (!el || lines.length === 0) return;
    if (follow) {
      el.scrollTop = el.scrollHeight;
    } else if (anchor.current) {
      const index = indexOfOffset(lines, anchor.current.offset);
      el.scrollTop = index * ROW_PX + anchor.current.delta;
    }
  }, [lines, follow]);

  function onScroll() {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < AT_END_PX;
    if (atEnd !== follow) setFollow(atEnd);
    const top = lines[Math.floor(el.scrollTop / ROW_PX)];
    anchor.current = top ? { offset: top.offset, delta: el.scrollTop % ROW_PX } : null;
    if (el.scrollTop < LOAD_OLDER_PX && !reachedStart) void loadOlder();
  }

  return (
    <section aria-labelledby="log-title" className="log-section">
      <header className="log-header">
        <h3 id="log-title">{t("detail.log")}</h3>
        <LiveIndicator state={ended ? "ended" : state} testId="log-live-status" />
        <span className="muted" data-testid="log-count" data-count={lines.length}>
          {t("log.lines", { count: lines.length })}
        </span>
        <label className="follow">
          <input
            type="checkbox"
            checked={follow}
            data-testid="log-follow"
            onChange={(e) => setFollow(e.target.checked)}
          />
          {t("log.follow")}
        </label>
        <a className="secondary-link" href={`/api/tasks/${id}/files/training.log`} download>
          {t("log.download")}
        </a>
      </header>
      {lines.length === 0 ? (
        <p className="muted">{t("detail.noLog")}</p>
      ) : (
        <div ref={box} className="log" data-testid="task-log" onScroll={onScroll}>
          {loadingOlder && <div className="log-note muted">{t("log.loadingOlder")}</div>}
          <div className="log-canvas" style={{ height: virtualizer.getTotalSize() }}>
            {virtualizer.getVirtualItems().map((row) => {
              const line = lines[row.index]!;
              return (
                <div
                  key={row.key}
                  className="log-line"
                  data-offset={line.offset}
                  style={{ transform: `translateY(${row.start}px)` }}
                >
                  {displayText(line.text)}
                </div>
              );
            })}
          </div>
        </div>
      )}
    </section>
  );
}
