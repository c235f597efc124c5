"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import { useFormat } from "./use-format";

/**
 * Says so when the studio restarted while this page was open (its start time changed) and
 * training went on through it: the trainers outlive the studio, and the reader should know
 * that nothing was lost.
 */
export function RestartBanner() {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const format = useFormat();
  const info = useQuery(trpc.studio.info.queryOptions());
  const lastStart = useRef<number | null>(null);
  const [restart, setRestart] = useState<{ at: Date; running: number } | null>(null);
  const [dismissed, setDismissed] = useState<Date | null>(null);

  const startedAt = info.data?.startedAt;
  const counts = info.data?.counts;
  useEffect(() => {
    if (!startedAt || !counts) return;
    const time = new Date(startedAt).getTime();
    const previous = lastStart.current;
    lastStart.current = time;
    if (previous === null || previous === time) return;
    // counted when the new studio is first seen: the tasks it re-attached are still running
    const running = (counts.training ?? 0) + (counts.paused ?? 0) + (counts.preparing ?? 0);
    if (running > 0) setRestart({ at: new Date(startedAt), running });
  }, [startedAt, counts]);

  if (!restart || dismissed === restart.at) return null;
  return (
    <div className="banner" role="status" data-testid="restart-banner">
      <p>{t("banner.restarted", { time: format.dateTime(restart.at), count: restart.running })}</p>
      <button type="button" className="secondary" onClick={() => setDismissed(restart.at)}>
        {t("banner.dismiss")}
      </button>
    </div>
  );
}
