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
  const firstStart = useRef<number | null>(null);
  const [restartedAt, setRestartedAt] = useState<Date | null>(null);
  const [dismissed, setDismissed] = useState<Date | null>(null);

  const startedAt = info.data?.startedAt;
  const counts = info.data?.counts;
  const running = (counts?.training ?? 0) + (counts?.paused ?? 0) + (counts?.preparing ?? 0);
  useEffect(() => {
    if (!startedAt) return;
    const time = new Date(startedAt).getTime();
    if (firstStart.current === null) firstStart.current = time;
    else if (time !== firstStart.current && running > 0) setRestartedAt(new Date(startedAt));
  }, [startedAt, running]);

  if (!restartedAt || dismissed === restartedAt) return null;
  return (
    <div className="banner" role="status" data-testid="restart-banner">
      <p>{t("banner.restarted", { time: format.dateTime(restartedAt), count: running })}</p>
      <button type="button" className="secondary" onClick={() => setDismissed(restartedAt)}>
        {t("banner.dismiss")}
      </button>
    </div>
  );
}
