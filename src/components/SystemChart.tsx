"use client";

import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { useTranslation } from "react-i18next";
import {
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";
import { useTRPC } from "../trpc/context";
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
      {points.length === 0 ? (
        <p className="muted">{t("system.empty")}</p>
      ) : (
        <div className="chart" data-testid="system-chart" data-points={points.length}>
          <ResponsiveContainer width="100%" height="100%">
            <LineChart data={points} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
              <XAxis dataKey="minutes" type="number" domain={["dataMin", "dataMax"]} unit=" min" />
              <YAxis yAxisId="percent" width={48} domain={[0, "auto"]} unit="%" />
              <YAxis yAxisId="mb" orientation="right" width={64} domain={[0, "auto"]} unit=" MB" />
              <Tooltip />
              <Legend />
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
            </LineChart>
          </ResponsiveContainer>
        </div>
      )}
    </section>
  );
}
