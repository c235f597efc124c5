"use client";

import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { useTranslation } from "react-i18next";
import { Line, YAxis } from "recharts";
import { useTRPC } from "../trpc/context";
import { ChartFrame } from "./ChartFrame";
import { systemSeries } from "./system-series";

/** The runner samples every 5 s; while the task runs the chart looks that often. */
const REFRESH_MS = 5_000;

/** What the trainer used over time (CPU, memory, GPUs), as its runner recorded it. */
export function SystemChart({ id, active }: { id: string; active: boolean }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const samples = useQuery({
    ...trpc.task.system.queryOptions({ id }),
    refetchInterval: active ? REFRESH_MS : false,
  });
  const { points, gpus } = useMemo(() => systemSeries(samples.data ?? []), [samples.data]);

  return (
    <section aria-labelledby="system-title">
      <h3 id="system-title">{t("system.title")}</h3>
      <ChartFrame
        testId="system-chart"
        points={points}
        x={{ dataKey: "minutes", unit: " min" }}
        yAxes={
          <>
            <YAxis yAxisId="percent" width={48} domain={[0, "auto"]} unit="%" />
            <YAxis yAxisId="mb" orientation="right" width={64} domain={[0, "auto"]} unit=" MB" />
          </>
        }
        empty={t("system.empty")}
      >
        <Line
          yAxisId="percent"
          name={t("system.cpu")}
          dataKey="cpuPercent"
          stroke="#1f45c2"
          dot={false}
          isAnimationActive={false}
        />
        <Line
          yAxisId="mb"
          name={t("system.memory")}
          dataKey="memoryMB"
          stroke="#7c3aed"
          dot={false}
          isAnimationActive={false}
        />
        {gpus.map((index) => (
          <Line
            key={index}
            yAxisId="percent"
            name={t("system.gpu", { index })}
            dataKey={`gpu${index}`}
            stroke="#15803d"
            dot={false}
            isAnimationActive={false}
            connectNulls
          />
        ))}
      </ChartFrame>
    </section>
  );
}
