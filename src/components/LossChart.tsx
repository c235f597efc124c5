"use client";

import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useRef } from "react";
import { useTranslation } from "react-i18next";
import { Line } from "recharts";
import { useTRPC } from "../trpc/context";
import { ChartFrame } from "./ChartFrame";
import { lossSeries } from "./loss-series";

/** Updates can come many times a second; the chart refetches its rows at most this often. */
const REFETCH_MS = 2_000;

/** Train and eval loss by step, refreshed as the task's progress moves (see chartVersion). */
export function LossChart({ id, version }: { id: string; version: string }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const metrics = useQuery(trpc.task.metrics.queryOptions({ id }));
  const lastFetch = useRef(0);
  const { refetch } = metrics;

  // `version` changes as the task's progress moves; refetch then, but not more often than REFETCH_MS
  useEffect(() => {
    if (version === "") return;
    const wait = Math.max(0, lastFetch.current + REFETCH_MS - Date.now());
    const timer = setTimeout(() => {
      lastFetch.current = Date.now();
      void refetch();
    }, wait);
    return () => clearTimeout(timer);
  }, [version, refetch]);

  const points = useMemo(() => lossSeries(metrics.data ?? []), [metrics.data]);
  const hasEval = points.some((point) => point.evalLoss !== undefined);

  return (
    <section aria-labelledby="chart-title">
      <h3 id="chart-title">{t("chart.title")}</h3>
      <ChartFrame
        testId="loss-chart"
        points={points}
        x={{ dataKey: "step" }}
        empty={t("chart.empty")}
        attributes={{ "data-last-step": points.at(-1)?.step }}
      >
        <Line
          name={t("chart.trainLoss")}
          dataKey="loss"
          stroke="#1f45c2"
          dot={false}
          isAnimationActive={false}
          connectNulls
        />
        {hasEval && (
          <Line
            name={t("chart.evalLoss")}
            dataKey="evalLoss"
            stroke="#c2410c"
            dot={{ r: 3 }}
            isAnimationActive={false}
            connectNulls
          />
        )}
      </ChartFrame>
    </section>
  );
}
